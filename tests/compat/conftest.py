"""Server fixtures of the EPR conformance suite.

``epr_server`` is parametrized indirectly with a case's ``server_key`` (setup letter plus extra
``EPR_*`` environment) at module scope, so pytest groups the cases of one server together, starts
the server once before them and stops it (SIGTERM, then SIGKILL of the process group) after them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from epr_cases import load_setups
from epr_server import RunningServer, start_server, stop_server

ServerKey = tuple[str, tuple[tuple[str, str], ...]]


def _server_name(key: ServerKey) -> str:
    setup, env = key
    return setup + "".join(f"-{k}={v}" for k, v in env)


@pytest.fixture(scope="module")
def epr_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    key: ServerKey = request.param
    setup, env = key
    setups = load_setups()
    if setup not in setups:
        raise KeyError(f"cases.md has no setup {setup!r} in its setup table")
    name = _server_name(key)
    root = tmp_path_factory.mktemp(f"epr-{setup}")
    server = start_server(name, root, setups[setup], dict(env))
    try:
        yield server
    finally:
        stop_server(server)
