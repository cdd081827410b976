"""Readiness: the listener opens at once, every route answers 503 until the load is done."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from package_storage.registry.config import Settings
from package_storage.registry.http.app import AppOptions, SingleIndexRegistry, create_app
from package_storage.registry.http.loading import LoadingRegistry
from package_storage.registry.http.server import Loading, run_server
from package_storage.registry.index import RegistryIndex


class _Finished(Exception):
    """Raised by the test's load to stop the server it runs beside."""


def _serve(load: Callable[[LoadingRegistry], None]) -> tuple[str, threading.Thread, list[Any]]:
    pending = LoadingRegistry()
    app = create_app(pending, AppOptions(ready=pending.is_ready))
    listening = threading.Event()
    ports: list[int] = []
    raised: list[Any] = []

    def on_listening(socks: Sequence[socket.socket]) -> None:
        ports.append(int(socks[0].getsockname()[1]))
        listening.set()

    def run() -> None:
        try:
            run_server(
                app,
                Settings(address="127.0.0.1:0"),
                on_listening=on_listening,
                loading=Loading(lambda: load(pending)),
            )
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert listening.wait(30)
    return f"http://127.0.0.1:{ports[0]}", thread, raised


def test_503_until_loaded_then_200() -> None:
    loaded, finish = threading.Event(), threading.Event()

    def load(pending: LoadingRegistry) -> None:
        assert loaded.wait(30)
        pending.set(SingleIndexRegistry(RegistryIndex([[], []])))
        assert finish.wait(30)
        raise _Finished

    base, thread, raised = _serve(load)
    try:
        # a distribution's prefix too: its index is not known yet (503, never 404)
        for target in ("/health", "/search", "/", "/package/x/1.0.0/", "/production/search"):
            answer = httpx.get(base + target, timeout=10)
            assert answer.status_code == 503, target
            assert "loading" in answer.text
        loaded.set()
        for _ in range(300):  # bounded: the load thread sets the registry right away
            answer = httpx.get(base + "/health", timeout=10)
            if answer.status_code == 200:
                break
            threading.Event().wait(0.01)
        assert answer.status_code == 200
        assert httpx.get(base + "/search", timeout=10).content == b"[]"
    finally:
        loaded.set()
        finish.set()
        thread.join(30)
    assert not thread.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], _Finished)


def test_failed_load_stops_the_server_and_raises() -> None:
    def load(pending: LoadingRegistry) -> None:
        raise _Finished("cannot load")

    _base, thread, raised = _serve(load)
    thread.join(30)
    assert not thread.is_alive()
    assert [str(e) for e in raised] == ["cannot load"]
