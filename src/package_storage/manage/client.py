"""The management API's client: :class:`~package_storage.store.access.StoreOperations` over
HTTP, so every store command of the CLI works on ``--store https://host:port``.

Answers are read back into the same records as a local store returns (``schemas.py``), and an
error answer is raised as the same class of the error tree with the same message (by its stable
``code``), so a command prints the same lines and exits with the same status either way. A
package folder is validated and zipped here (the same deterministic zip a local publish builds)
and uploaded as a zip; a zip is uploaded with the ``.sig`` beside it, if any.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from package_storage import __version__, errors
from package_storage.errors import (
    NotFoundError,
    PackageError,
    PackageStorageError,
    PolicyError,
    StorageError,
)
from package_storage.manage.schemas import (
    ChangeOut,
    DiffOut,
    EntriesOut,
    EventOut,
    FsckOut,
    NewTokenOut,
    RevisionOut,
    RevokedOut,
    RollbackPlanOut,
    ShowOut,
    TagOut,
    TokensOut,
    VerifyOut,
    WhoAmIOut,
)
from package_storage.store.service import (
    ChangeResult,
    FsckReport,
    PackageLocation,
    RollbackPlan,
    SignatureCheck,
    StageDiff,
    prepare_folder,
)
from package_storage.store.stages import Stage, StageGraph
from package_storage.store.storage.base import (
    Event,
    EventFilter,
    Revision,
    RevisionEntry,
    StageEntry,
    Tag,
    TokenRecord,
    format_time,
)

API = "/api/v1"
TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=600.0, pool=10.0)


def _error_classes() -> dict[str, type[PackageStorageError]]:
    """Stable code -> the class of ``errors.py`` that carries it."""
    found: dict[str, type[PackageStorageError]] = {}
    pending: list[type[PackageStorageError]] = [PackageStorageError]
    while pending:
        cls = pending.pop()
        if cls.__module__ == errors.__name__:
            found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


_ERRORS = _error_classes()


def error_from(code: str, message: str) -> PackageStorageError:
    """The error of the tree with ``code`` (PackageStorageError for an unknown code)."""
    cls = _ERRORS.get(code, PackageStorageError)
    exc = cls.__new__(cls)
    PackageStorageError.__init__(exc, message)
    return exc


class RemoteStore:
    """The store behind the management listener at ``url``, acting with ``token``."""

    def __init__(self, url: str, token: str, *, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url + API,
            headers={
                "authorization": f"Bearer {token}",
                "user-agent": f"package-storage/{__version__}",
            },
            timeout=TIMEOUT,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- plumbing --------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StorageError(f"cannot reach the store at {self.url}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and body is not None:
            return body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
            raise error_from(str(err.get("code", "error")), str(err.get("message", "")))
        raise StorageError(
            f"the store at {self.url} answered {response.status_code} {response.reason_phrase}"
            " (not the management API?)"
        )

    def whoami(self) -> WhoAmIOut:
        return WhoAmIOut.model_validate(self._call("GET", "/whoami"))

    # --- changes ---------------------------------------------------------------------------

    def publish(
        self, path: Path, *, stage: str | None = None, force: bool = False, reason: str = ""
    ) -> ChangeResult:
        path = Path(path)
        with _package_files(path) as (package, signature):
            files: dict[str, tuple[str, bytes | BinaryIO, str]] = {
                "package": (str(path), package, "application/zip")
            }
            if signature is not None:
                files["signature"] = (f"{path}.sig", signature, "application/pgp-signature")
            data = {"force": "true" if force else "false", "reason": reason}
            if stage is not None:
                data["stage"] = stage
            body = self._call("POST", "/packages", files=files, data=data)
        return ChangeOut.model_validate(body).record()

    def promote(
        self,
        name: str,
        version: str,
        *,
        to: str,
        source: str | None = None,
        force: bool = False,
        reason: str = "",
    ) -> ChangeResult:
        body = {"to": to, "from": source, "force": force, "reason": reason}
        path = f"/packages/{_seg(name)}/{_seg(version)}/promote"
        return ChangeOut.model_validate(self._call("POST", path, json=body)).record()

    def remove(
        self, name: str, version: str, *, stage: str, force: bool = False, reason: str = ""
    ) -> ChangeResult:
        body = {"stage": stage, "force": force, "reason": reason}
        path = f"/packages/{_seg(name)}/{_seg(version)}/remove"
        return ChangeOut.model_validate(self._call("POST", path, json=body)).record()

    def yank(
        self, name: str, version: str, *, stage: str, reason: str, yanked: bool = True
    ) -> ChangeResult:
        verb = "yank" if yanked else "unyank"
        path = f"/packages/{_seg(name)}/{_seg(version)}/{verb}"
        body = self._call("POST", path, json={"stage": stage, "reason": reason})
        return ChangeOut.model_validate(body).record()

    def add_stage(self, stage: Stage, *, reason: str) -> ChangeResult:
        body = self._call("POST", "/stages", json={**stage.as_config(), "reason": reason})
        return ChangeOut.model_validate(body).record()

    def freeze_stage(self, name: str, *, reason: str, frozen: bool = True) -> ChangeResult:
        path = f"/stages/{_seg(name)}/{'freeze' if frozen else 'unfreeze'}"
        return ChangeOut.model_validate(self._call("POST", path, json={"reason": reason})).record()

    def tag(self, distribution: str, tag: str, *, revision: int | None = None) -> Tag:
        body = {"tag": tag, "revision": revision}
        path = f"/distributions/{_seg(distribution)}/tags"
        return TagOut.model_validate(self._call("POST", path, json=body)).record()

    def rollback(
        self, distribution: str, revision_or_tag: str | int, *, reason: str = ""
    ) -> ChangeResult:
        path = f"/distributions/{_seg(distribution)}/rollback"
        body = self._call("POST", path, json={"revision": revision_or_tag, "reason": reason})
        return ChangeOut.model_validate(body).record()

    def rollback_plan(self, distribution: str, revision_or_tag: str | int) -> RollbackPlan:
        path = f"/distributions/{_seg(distribution)}/rollback-plan"
        body = self._call("GET", path, params={"revision": str(revision_or_tag)})
        return RollbackPlanOut.model_validate(body).record()

    # --- reads -----------------------------------------------------------------------------

    def stages(self) -> StageGraph:
        return StageGraph.from_config(self._call("GET", "/stages")["stages"])

    def stage_events(self, name: str) -> list[Event]:
        body = self._call("GET", f"/stages/{_seg(name)}/events")
        return [EventOut.model_validate(e).record() for e in body["events"]]

    def list_entries(
        self,
        *,
        stage: str | None = None,
        distribution: str | None = None,
        revision: str | int | None = None,
    ) -> list[StageEntry] | list[RevisionEntry]:
        params = _params(stage=stage, distribution=distribution, revision=revision)
        listed = EntriesOut.model_validate(self._call("GET", "/packages", params=params))
        if listed.kind == "revision":
            return [e.revision_entry() for e in listed.entries]
        return [e.stage_entry() for e in listed.entries]

    def show(self, name: str, version: str | None = None) -> list[PackageLocation]:
        body = self._call("GET", f"/packages/{_seg(name)}", params=_params(version=version))
        return [loc.record() for loc in ShowOut.model_validate(body).versions]

    def diff(self, stage_a: str, stage_b: str) -> StageDiff:
        body = self._call("GET", "/diff", params={"a": stage_a, "b": stage_b})
        return DiffOut.model_validate(body).record()

    def history(self, query: EventFilter | None = None) -> list[Event]:
        q = query or EventFilter()
        params = _params(
            stage=q.stage,
            package=q.name,
            version=q.version,
            action=q.action,
            actor=q.actor,
            since=format_time(q.since) if q.since else None,
            until=format_time(q.until) if q.until else None,
            after=q.after_id,
            limit=q.limit,
            newest_first="true" if q.newest_first else None,
        )
        body = self._call("GET", "/history", params=params)
        return [EventOut.model_validate(e).record() for e in body["events"]]

    def revisions(self, distribution: str) -> list[Revision]:
        body = self._call("GET", f"/distributions/{_seg(distribution)}/revisions")
        return [RevisionOut.model_validate(r).record() for r in body["revisions"]]

    def resolve_revision(self, distribution: str, revision_or_tag: str | int) -> Revision:
        path = f"/distributions/{_seg(distribution)}/revisions/{_seg(str(revision_or_tag))}"
        return RevisionOut.model_validate(self._call("GET", path)).record()

    def current_revision(self, distribution: str) -> Revision | None:
        body = self._call("GET", f"/distributions/{_seg(distribution)}")
        current = body.get("current")
        return None if current is None else RevisionOut.model_validate(current).record()

    def tags(self, distribution: str | None = None) -> list[Tag]:
        body = self._call("GET", "/tags", params=_params(distribution=distribution))
        return [TagOut.model_validate(t).record() for t in body["tags"]]

    def verify(self, name: str, version: str, *, stage: str | None = None) -> list[SignatureCheck]:
        path = f"/packages/{_seg(name)}/{_seg(version)}/signatures"
        body = self._call("GET", path, params=_params(stage=stage))
        return [c.record() for c in VerifyOut.model_validate(body).checks]

    # --- admin -----------------------------------------------------------------------------

    def fsck(self, *, repair: bool = False) -> FsckReport:
        if repair:
            raise PolicyError(
                "fsck --repair runs only on the store's own machine (package-storage fsck"
                " --repair --store DIR): over the management API fsck only reports"
            )
        return FsckOut.model_validate(self._call("GET", "/fsck")).record()

    def create_token(
        self, name: str, scopes: Sequence[str], *, lifetime: timedelta | None = None
    ) -> tuple[TokenRecord, str]:
        expires = None
        if lifetime is not None:
            expires = f"{max(1, int(lifetime.total_seconds() // 60))}m"
        body = {"name": name, "scopes": list(scopes), "expires": expires}
        made = NewTokenOut.model_validate(self._call("POST", "/tokens", json=body))
        return made.record.record(), made.token

    def tokens(self) -> list[TokenRecord]:
        listed = TokensOut.model_validate(self._call("GET", "/tokens"))
        return [t.record() for t in listed.tokens]

    def revoke_token(self, name: str) -> tuple[TokenRecord, bool]:
        done = RevokedOut.model_validate(self._call("POST", f"/tokens/{_seg(name)}/revoke"))
        return done.record.record(), done.changed


def _seg(text: str) -> str:
    """One URL path segment."""
    return quote(text, safe="")


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@contextlib.contextmanager
def _package_files(path: Path) -> Iterator[tuple[bytes | BinaryIO, bytes | None]]:
    """(package zip, signature) to upload for ``path``: a folder validated and zipped here, a
    zip streamed from disk with the ``.sig`` beside it, if any."""
    if path.is_dir():
        yield prepare_folder(path).data, None
        return
    if not path.is_file():
        raise NotFoundError(f"{path} does not exist: give a package folder or a zip")
    signature: bytes | None = None
    sig_path = path.with_name(path.name + ".sig")
    if sig_path.is_file():
        try:
            signature = sig_path.read_bytes()
        except OSError as exc:
            raise PackageError(
                f"cannot read signature: {exc.strerror}", path=str(sig_path)
            ) from None
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise PackageError(f"cannot read: {exc.strerror}", path=str(path)) from None
    with handle:
        yield handle, signature


__all__ = ["RemoteStore", "error_from"]
