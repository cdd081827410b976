"""The management API's operations: the same rules and messages as the CLI (every route calls
the service), JSON in and out, errors as ``{"error": {"code", "message"}}``, uploads under a
size limit, the event feed. In-process, and the upload and concurrency cases also through a
real server on loopback."""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from manage_helpers import MakeToken, auth, live_client

from live_manage import LiveServer
from package_storage.store.directory import Store

V = "/api/v1"


@pytest.fixture
def admin(make_token: MakeToken) -> dict[str, str]:
    return auth(make_token("admin", name="root"))


def publish(client: Any, headers: dict[str, str], path: Path, **data: str) -> httpx.Response:
    files: dict[str, Any] = {"package": (str(path), path.read_bytes(), "application/zip")}
    sig = path.with_name(path.name + ".sig")
    if sig.exists():
        files["signature"] = (sig.name, sig.read_bytes())
    response: httpx.Response = client.post(f"{V}/packages", headers=headers, files=files, data=data)
    return response


# --- publish ---------------------------------------------------------------------------------


def test_publish_then_again_is_unchanged(
    app_client: Any, admin: dict[str, str], upload: Callable[..., Path], store: Store
) -> None:
    zip_path = upload("2.0.0")
    r = publish(app_client, admin, zip_path)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["changed"] is True
    assert body["message"].startswith("published hello_nginx 2.0.0 to snapshot (sha256 ")
    assert body["event"]["action"] == "publish" and body["event"]["actor"] == "root"
    assert [(x["distribution"], x["current"]) for x in body["revisions"]] == [("snapshot", True)]
    digest = body["event"]["detail"]["digest"]
    assert store.blobs.get(digest) == zip_path.read_bytes()  # stored byte for byte
    again = publish(app_client, admin, zip_path)
    assert again.status_code == 200 and again.json()["changed"] is False
    assert "nothing to do" in again.json()["message"]


def test_publish_refusals_have_the_service_messages(
    app_client: Any, admin: dict[str, str], upload: Callable[..., Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really")
    r = publish(app_client, admin, broken)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "unsafe_package"  # the archive-safety gate
    assert r.json()["error"]["message"].startswith(f"{broken}: ")
    assert r.json()["error"]["message"].endswith("[zip-invalid]")
    other = upload("1.0.0", extra="other bytes")  # production holds 1.0.0 already
    r = publish(app_client, admin, other, stage="production")
    assert r.status_code == 403 and r.json()["error"]["code"] == "policy_refused"
    r = publish(app_client, admin, other, stage="nowhere")
    assert r.status_code == 404 and "stage nowhere does not exist" in r.json()["error"]["message"]
    r = publish(app_client, admin, other, force="maybe")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"


def test_upload_must_be_multipart_with_a_package(app_client: Any, admin: dict[str, str]) -> None:
    r = app_client.post(f"{V}/packages", headers=admin, content=b"PK..")
    assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]["message"]
    r = app_client.post(f"{V}/packages", headers=admin, data={"stage": "snapshot"}, files={})
    assert r.status_code == 400


def test_upload_over_the_limit_is_413_and_stores_nothing(
    app_client: Any, admin: dict[str, str], store: Store
) -> None:
    blobs = sorted(store.blobs.iter_digests())
    big = b"\0" * (4 * 1024 * 1024 + 1)
    r = app_client.post(f"{V}/packages", headers=admin, files={"package": ("big.zip", big)})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert "serve --max-upload-size" in r.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        boundary = b"--x\r\nContent-Disposition: form-data; name=package; filename=a.zip\r\n\r\n"
        yield boundary
        for _ in range(5):
            yield b"\0" * (1024 * 1024)
        yield b"\r\n--x--\r\n"

    r = app_client.post(
        f"{V}/packages",
        headers={**admin, "content-type": "multipart/form-data; boundary=x"},
        content=chunks(),
    )
    assert r.status_code == 413
    assert sorted(store.blobs.iter_digests()) == blobs


@pytest.mark.slow
def test_upload_limits_through_a_real_server(
    live: LiveServer, make_token: MakeToken, store: Store, upload: Callable[..., Path]
) -> None:
    headers = auth(make_token("admin"))
    before = (store.catalog.change_counter(), sorted(store.blobs.iter_digests()))
    with live_client(live) as client:
        big = b"\0" * (4 * 1024 * 1024 + 10)
        r = client.post(f"{V}/packages", headers=headers, files={"package": ("big.zip", big)})
        assert r.status_code == 413
        # A truncated upload: Content-Length promises more than is sent, then the client goes.
        host, port = live.manage_url.removeprefix("http://").split(":")
        data = upload("3.0.0").read_bytes()
        body = (
            b"--b\r\nContent-Disposition: form-data; name=package; filename=t.zip\r\n\r\n"
            + data
            + b"\r\n--b--\r\n"
        )
        head = (
            f"POST {V}/packages HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: {headers['authorization']}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(head + body[: len(body) // 2])
        # A truncated multipart body (complete request, the part never ends).
        cut = body[: len(body) // 2]
        r = client.post(
            f"{V}/packages",
            headers={**headers, "content-type": "multipart/form-data; boundary=b"},
            content=cut,
        )
        assert r.status_code in (400, 422), r.text
        assert r.json()["error"]["code"] in ("invalid_input", "invalid_package")
        assert client.get(f"{V}/stages", headers=headers).status_code == 200  # still serving
    assert (store.catalog.change_counter(), sorted(store.blobs.iter_digests())) == before


@pytest.mark.slow
def test_concurrent_publish_from_two_clients(
    live: LiveServer, make_token: MakeToken, store: Store, upload: Callable[..., Path]
) -> None:
    headers = [auth(make_token("publish:snapshot", name=f"ci-{i}")) for i in range(2)]
    same = upload("4.0.0")
    different = [upload("4.1.0"), upload("4.2.0")]
    results: list[list[dict[str, Any]]] = [[], []]

    def work(i: int) -> None:
        with live_client(live) as client:
            for path in (same, different[i]):
                r = publish(client, headers[i], path)
                results[i].append({"status": r.status_code, **r.json()})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(not t.is_alive() for t in threads)
    assert all(r["status"] == 200 for rs in results for r in rs), results
    first = [rs[0]["changed"] for rs in results]
    assert sorted(first) == [False, True]  # one published the shared version, one was a no-op
    assert all(rs[1]["changed"] for rs in results)
    versions = {e.version for e in store.catalog.entries("snapshot")}
    assert {"4.0.0", "4.1.0", "4.2.0"} <= versions
    assert store.catalog.check(deep=True) == []
    actors = {e.actor for e in store.catalog.events() if e.version in ("4.0.0", "4.1.0", "4.2.0")}
    assert actors == {"ci-0", "ci-1"}


# --- the other operations ----------------------------------------------------------------------


def test_stage_workflow_over_json(app_client: Any, admin: dict[str, str]) -> None:
    r = app_client.post(
        f"{V}/packages/hello_nginx/1.1.0/promote", headers=admin, json={"to": "production"}
    )
    assert r.status_code == 200 and r.json()["message"] == (
        "promoted hello_nginx 1.1.0 from staging to production"
    )
    assert [x["distribution"] for x in r.json()["revisions"]] == [
        "production",
        "staging",
        "snapshot",
    ]
    r = app_client.post(f"{V}/distributions/production/tags", headers=admin, json={"tag": "8.12.0"})
    assert r.status_code == 200 and r.json()["tag"] == "8.12.0"
    again = app_client.post(
        f"{V}/distributions/production/tags", headers=admin, json={"tag": "8.12.0"}
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    r = app_client.post(
        f"{V}/distributions/production/rollback", headers=admin, json={"revision": "first"}
    )
    assert r.status_code == 200 and r.json()["message"].startswith(
        "rolled production back to revision 1 (tag first)"
    )
    current = app_client.get(f"{V}/distributions/production", headers=admin).json()["current"]
    assert current["revision"] == 1
    listed = app_client.get(
        f"{V}/packages", headers=admin, params={"distribution": "production"}
    ).json()
    assert listed["kind"] == "revision"
    assert [(e["name"], e["version"]) for e in listed["entries"]] == [("hello_nginx", "1.0.0")]
    r = app_client.post(
        f"{V}/packages/hello_nginx/1.0.0/remove", headers=admin, json={"stage": "production"}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "policy_refused"


def test_reads(app_client: Any, admin: dict[str, str]) -> None:
    stages = app_client.get(f"{V}/stages", headers=admin).json()["stages"]
    assert [s["name"] for s in stages] == ["production", "staging", "snapshot"]
    shown = app_client.get(f"{V}/packages/hello_nginx", headers=admin).json()
    assert [v["version"] for v in shown["versions"]] == ["1.0.0", "1.1.0", "1.2.0"]
    assert shown["versions"][0]["entries"][0]["stage"] == "production"
    diff = app_client.get(f"{V}/diff", headers=admin, params={"a": "staging", "b": "snapshot"})
    assert [e["version"] for e in diff.json()["only_a"]] == ["1.1.0"]
    history = app_client.get(
        f"{V}/history", headers=admin, params={"limit": 2, "newest_first": "true"}
    ).json()["events"]
    assert len(history) == 2 and history[0]["id"] > history[1]["id"]
    revs = app_client.get(f"{V}/distributions/production/revisions", headers=admin).json()
    assert revs["revisions"][0]["tags"] == ["first"]
    tags = app_client.get(f"{V}/tags", headers=admin).json()["tags"]
    assert [(t["distribution"], t["tag"]) for t in tags] == [("production", "first")]
    missing = app_client.get(f"{V}/packages/nothing", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    r = app_client.get(f"{V}/packages/hello_nginx/1.0.0/signatures", headers=admin)
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("no keys to verify")
    fsck = app_client.get(f"{V}/fsck", headers=admin).json()
    assert fsck["ok"] is True and fsck["checked"] >= 3


def test_errors_have_one_shape(app_client: Any, admin: dict[str, str]) -> None:
    for method, path, status, code in (
        ("GET", f"{V}/nowhere", 404, "not_found"),
        ("DELETE", f"{V}/stages", 405, "method_not_allowed"),
        ("GET", f"{V}/diff", 400, "invalid_input"),
        ("GET", f"{V}/events?after=-1", 400, "invalid_input"),
    ):
        r = app_client.request(method, path, headers=admin)
        assert r.status_code == status, (path, r.text)
        assert list(r.json()) == ["error"] and r.json()["error"]["code"] == code
        assert "\n" not in r.json()["error"]["message"]


def test_tokens_over_the_api(app_client: Any, admin: dict[str, str]) -> None:
    r = app_client.post(
        f"{V}/tokens", headers=admin, json={"name": "ci", "scopes": ["read"], "expires": "1h"}
    )
    assert r.status_code == 200
    secret = r.json()["token"]
    listed = app_client.get(f"{V}/tokens", headers=admin).text
    assert secret not in listed and "secret_hash" not in listed
    who = app_client.get(f"{V}/whoami", headers=auth(secret)).json()
    assert who["name"] == "ci" and who["scopes"] == ["read"] and who["expires"]


# --- the event feed ----------------------------------------------------------------------------


def test_events_are_paged(app_client: Any, admin: dict[str, str], store: Store) -> None:
    total = len(store.catalog.events())
    seen: list[int] = []
    after = 0
    for _ in range(total + 2):  # bounded
        page = app_client.get(f"{V}/events", headers=admin, params={"after": after, "limit": 2})
        body = page.json()
        seen += [e["id"] for e in body["events"]]
        after = body["next_after"]
        if not body["more"]:
            break
    assert seen == [e.id for e in store.catalog.events()]


def test_event_stream_sends_new_events(
    app_client: Any, admin: dict[str, str], store: Store
) -> None:
    last = store.catalog.events()[-1].id
    store.service("someone").tag("staging", "late")
    with app_client.stream(
        "GET", f"{V}/events/stream", headers=admin, params={"after": last, "timeout": 5}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = ""
        for chunk in r.iter_text():
            text += chunk
            if "id: " in text and "\n\n" in text.split("id: ", 1)[1]:
                break
    block = text[text.index("id: ") :].split("\n\n")[0]
    lines = dict(line.split(": ", 1) for line in block.splitlines())
    assert int(lines["id"]) == last + 1
    event = json.loads(lines["data"])
    assert event["action"] == "tag" and event["actor"] == "someone"


@pytest.mark.slow
def test_event_stream_follows_changes_through_a_real_server(
    live: LiveServer, make_token: MakeToken, store: Store
) -> None:
    headers = auth(make_token("read"))
    last = store.catalog.events()[-1].id
    with (
        live_client(live) as client,
        client.stream("GET", f"{V}/events/stream", headers=headers, params={"timeout": 60}) as r,
    ):
        chunks = r.iter_text()
        first = next(chunks)
        assert first.startswith(": package-storage events")  # the stream is open
        text = ""
        tagged = False
        for chunk in itertools.chain([first], chunks):  # every event so far, then the new one
            text += chunk
            if not tagged and text.count("id: ") == last and text.endswith("\n\n"):
                store.service("late-bot").tag("staging", "late")
                tagged = True
            if f"id: {last + 1}\n" in text and text.endswith("\n\n"):
                break
    block = text[text.index(f"id: {last + 1}\n") :].split("\n\n")[0]
    event = json.loads(block.split("data: ", 1)[1])
    assert event["actor"] == "late-bot" and event["action"] == "tag"


def test_openapi_document(app_client: Any) -> None:
    doc = app_client.get(f"{V}/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for path in ("/packages", "/events", "/events/stream", "/tokens", "/fsck", "/diff"):
        assert f"{V}{path}" in doc["paths"]
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
