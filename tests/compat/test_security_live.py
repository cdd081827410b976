"""Hostile requests against a live server (setup B: the ``package`` fixtures).

Requests go out through a plain socket so nothing normalises them. Every answer must be a 3xx or
4xx (redirects are followed on the same server and judged the same way), never a 5xx and never a
200 carrying content from outside the package; the server must still answer ``/health`` after
each request. Secrets are planted next to the package tree (marker files at every level above the
package version directory) and reached through ``..`` paths and symlinks.
"""

from __future__ import annotations

import io
import socket
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from epr_server import HOST, RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow

MARKER = f"SECRET-{uuid.uuid4().hex}".encode()
PASSWD_SIGNS = (b"root:x:0:0", b"root:*:0:0", b"/bin/sh\n", b"nologin\n")
SECRET_NAME = "secret.txt"
MAX_REDIRECTS = 3


@dataclass
class RawResponse:
    status: int | None
    headers: list[tuple[bytes, bytes]]
    raw: bytes

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def raw_request(
    port: int, target: bytes, method: bytes = b"GET", timeout: float = 20.0
) -> RawResponse:
    """Send ``METHOD target HTTP/1.1`` byte for byte and read until the server closes."""
    request = method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    chunks: list[bytes] = []
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(request)
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, _ = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status: int | None = None
    parts = lines[0].split(b" ", 2) if lines and lines[0] else []
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        status = int(parts[1])
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        key, sep, value = line.partition(b":")
        if sep:
            headers.append((key.strip(), value.strip()))
    return RawResponse(status, headers, raw)


def leaked(raw: bytes) -> str | None:
    """What outside content the raw answer carries, if any (zip bodies are opened too)."""
    blobs = [raw]
    body = raw.partition(b"\r\n\r\n")[2]
    if body.startswith(b"PK"):
        try:
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                blobs.extend(archive.read(info) for info in archive.infolist() if not info.is_dir())
        except (zipfile.BadZipFile, ValueError, OSError):
            pass
    for blob in blobs:
        if MARKER in blob:
            return "the planted secret marker"
        for sign in PASSWD_SIGNS:
            if sign in blob:
                return f"/etc/passwd content ({sign!r})"
    return None


def plant_secrets(paths: list[Path]) -> None:
    """Marker files at every directory level from the tmp root down to ``package/example``."""
    package_root = paths[0]
    level = package_root / "example"
    while True:
        (level / SECRET_NAME).write_bytes(MARKER + b"\n")
        if level.name.startswith("epr-"):  # the tmp dir made by the fixture
            break
        level = level.parent


def add_symlinks(paths: list[Path]) -> None:
    """Symlinks inside the copied example 1.0.0 package that point outside of it."""
    version_dir = paths[0] / "example" / "1.0.0"
    tmp_root = paths[0].parent.parent
    (version_dir / "docs" / "passwd.md").symlink_to("/etc/passwd")
    (version_dir / "docs" / "secret.md").symlink_to(tmp_root / SECRET_NAME)
    (version_dir / "docs" / "relative.md").symlink_to(Path("..", "..", "..", SECRET_NAME))
    (version_dir / "img" / "outside").symlink_to(tmp_root, target_is_directory=True)


def _start(
    tmp_path_factory: pytest.TempPathFactory, name: str, symlinks: bool
) -> Iterator[RunningServer]:
    def prepare(paths: list[Path]) -> None:
        plant_secrets(paths)
        if symlinks:
            add_symlinks(paths)

    root = tmp_path_factory.mktemp("epr-security")
    server = start_server(name, root, ["package"], prepare=prepare)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from _start(tmp_path_factory, "B-security", symlinks=False)


@pytest.fixture(scope="module")
def symlink_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from _start(tmp_path_factory, "B-security-symlinks", symlinks=True)


def judge(server: RunningServer, target: bytes, *, allow_ok_json: bool = False) -> None:
    """Send ``target``, follow same-server redirects, and fail on 5xx, 200 or leaked content."""
    trail: list[str] = []
    current = target
    for _ in range(MAX_REDIRECTS + 1):
        resp = raw_request(server.port, current)
        trail.append(f"{current[:120]!r} -> {resp.status}")
        leak = leaked(resp.raw)
        assert leak is None, f"answer leaks {leak}: {' => '.join(trail)}"
        assert resp.status is not None, (
            f"no HTTP answer (connection closed) for {' => '.join(trail)}; got {resp.raw[:200]!r}"
        )
        assert resp.status < 500, (
            f"server error for {' => '.join(trail)}: {resp.raw[:400]!r}\nlog:\n{server.log_tail(15)}"
        )
        if 300 <= resp.status < 400:
            location = resp.header(b"Location")
            if location is None or not location.startswith(b"/") or location.startswith(b"//"):
                break
            current = location
            continue
        if resp.status == 200 and allow_ok_json:
            body = resp.raw.partition(b"\r\n\r\n")[2]
            assert body.lstrip()[:1] in (b"[", b"{"), (
                f"200 without a JSON body: {' => '.join(trail)}"
            )
            break
        assert 400 <= resp.status < 500, f"expected 3xx/4xx: {' => '.join(trail)}"
        break
    health = server.health()
    assert health == 200, (
        f"/health answered {health} after {target[:120]!r}; log:\n{server.log_tail(15)}"
    )


def _ups(n: int, sep: bytes = b"/", dots: bytes = b"..") -> bytes:
    return sep.join([dots] * n)


BASE = b"/package/example/1.0.0/"
TRAVERSALS: list[tuple[str, bytes]] = []
for depth in (1, 4, 8):
    TRAVERSALS += [
        (f"dotdot-{depth}-passwd", BASE + _ups(depth) + b"/etc/passwd"),
        (f"dotdot-{depth}-secret", BASE + _ups(depth) + b"/" + SECRET_NAME.encode()),
        (f"pct2e-{depth}", BASE + _ups(depth, dots=b"%2e%2e") + b"/" + SECRET_NAME.encode()),
        (f"pct2E-upper-{depth}", BASE + _ups(depth, dots=b"%2E%2E") + b"/etc/passwd"),
        (f"dotdot-pct2f-{depth}", BASE + _ups(depth, sep=b"%2f") + b"%2f" + SECRET_NAME.encode()),
        (f"pct-all-{depth}", BASE + _ups(depth, sep=b"%2f", dots=b"%2e%2e") + b"%2fetc%2fpasswd"),
        (f"backslash-{depth}", BASE + _ups(depth, sep=b"\\") + b"\\" + SECRET_NAME.encode()),
        (f"pct5c-{depth}", BASE + _ups(depth, sep=b"%5c") + b"%5c" + SECRET_NAME.encode()),
        (
            f"mixed-{depth}",
            BASE + b"docs/" + _ups(depth + 1, sep=b"/.%2f") + b"/" + SECRET_NAME.encode(),
        ),
    ]
TRAVERSALS += [
    ("docs-dotdot-secret", BASE + b"docs/../../" + SECRET_NAME.encode()),
    ("dotdot-in-name", b"/package/../../../../etc/passwd/1.0.0/"),
    ("dotdot-as-version", b"/package/example/..%2f..%2f..%2f..%2fetc/passwd"),
    ("epr-dir-dotdot", b"/epr/..%2f..%2f..%2f/example-1.0.0.zip"),
    ("nul-suffix", BASE + b"docs/README.md%00.jpg"),
    ("nul-only", BASE + b"%00"),
    ("nul-dotdot", BASE + b"..%00/..%00/..%00/..%00/etc/passwd"),
    ("raw-nul-byte", BASE + b"docs/README.md\x00"),
    ("double-slash-absolute", BASE + b"/etc/passwd"),
    ("pct2f-absolute", BASE + b"%2fetc%2fpasswd"),
    ("pct2f-double-absolute", BASE + b"%2f%2fetc/passwd"),
    ("windows-drive", BASE + b"C:%5cWindows%5cwin.ini"),
    ("plain-absolute", b"/etc/passwd"),
    ("no-leading-slash", b"etc/passwd"),
    ("absolute-form-uri", b"http://127.0.0.1/package/example/1.0.0/../../../../etc/passwd"),
    ("long-path-10k", BASE + b"docs/" + b"a" * 10_240),
    ("long-dotdot-path", BASE + b"../" * 3_000 + b"etc/passwd"),
    ("invalid-escape-zz", BASE + b"docs/%zz"),
    ("invalid-escape-trailing", BASE + b"docs/%"),
    ("invalid-escape-short", BASE + b"docs/README.md%2"),
    ("invalid-escape-in-name", b"/package/ex%zzample/1.0.0/"),
    ("non-utf8-raw", BASE + b"docs/\xff\xfe.md"),
    ("non-utf8-pct", BASE + b"docs/%ff%fe.md"),
    ("non-utf8-overlong-dot", BASE + b"%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd"),
    ("non-utf8-version", b"/package/example/1.0.0%ff/docs/README.md"),
    ("dir-request", BASE + b"docs"),
]
QUERY_ATTACKS: list[tuple[str, bytes]] = [
    ("query-100k", b"/search?package=" + b"a" * 102_400),
    ("query-100k-many-params", b"/search?" + b"&".join([b"x=1"] * 25_600)),
    ("query-invalid-escape", b"/search?package=%zz&kibana.version=%"),
    ("query-non-utf8", b"/search?package=%ff%fe&category=\xff"),
    ("query-on-traversal", BASE + b"../../../../etc/passwd?" + b"q" * 102_400),
]


@pytest.mark.parametrize("target", [t for _, t in TRAVERSALS], ids=[i for i, _ in TRAVERSALS])
def test_path_attack(plain_server: RunningServer, target: bytes) -> None:
    judge(plain_server, target)


@pytest.mark.parametrize("target", [t for _, t in QUERY_ATTACKS], ids=[i for i, _ in QUERY_ATTACKS])
def test_query_attack(plain_server: RunningServer, target: bytes) -> None:
    # /search legitimately answers 200 with a JSON array for odd query strings (unknown
    # parameters are ignored by default); anything else must be refused.
    judge(plain_server, target, allow_ok_json=target.startswith(b"/search?"))


def test_symlink_added_after_start_is_not_followed(plain_server: RunningServer) -> None:
    docs = Path(plain_server.config).parent / "packages" / "package" / "example" / "1.0.0" / "docs"
    (docs / "late-passwd.md").symlink_to("/etc/passwd")
    (docs / "late-secret.md").symlink_to(plain_server.root / SECRET_NAME)
    judge(plain_server, BASE + b"docs/late-passwd.md")
    judge(plain_server, BASE + b"docs/late-secret.md")


def test_absolute_path_to_planted_secret(plain_server: RunningServer) -> None:
    secret = str(plain_server.root / SECRET_NAME).encode()
    judge(plain_server, BASE + secret.replace(b"/", b"%2f"))
    judge(plain_server, BASE + b"docs/%2f" + secret.lstrip(b"/").replace(b"/", b"%2f"))
    judge(plain_server, BASE + b"." + secret)


@pytest.mark.parametrize(
    "target",
    [
        BASE + b"docs/passwd.md",
        BASE + b"docs/secret.md",
        BASE + b"docs/relative.md",
        BASE + b"img/outside/" + SECRET_NAME.encode(),
        BASE + b"img/outside/packages/package/example/" + SECRET_NAME.encode(),
    ],
    ids=["abs-passwd", "abs-secret", "relative-secret", "dir-link", "dir-link-deep"],
)
def test_symlink_present_at_load(symlink_server: RunningServer, target: bytes) -> None:
    judge(symlink_server, target)


def test_artifact_of_package_with_symlinks_has_no_outside_content(
    symlink_server: RunningServer,
) -> None:
    resp = raw_request(symlink_server.port, b"/epr/example/example-1.0.0.zip")
    assert resp.status is not None and resp.status < 500, resp.raw[:300]
    assert leaked(resp.raw) is None, "generated zip contains content from outside the package"


def test_server_still_up_after_attacks(plain_server: RunningServer) -> None:
    assert plain_server.alive()
    assert plain_server.health() == 200
    ok = raw_request(plain_server.port, BASE + b"docs/README.md")
    assert ok.status == 200, "a normal static request must still work"
    assert leaked(ok.raw) is None
