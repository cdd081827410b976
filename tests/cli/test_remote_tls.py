"""The remote CLI over https: the management listener with its own certificate
(``--manage-tls-cert/--manage-tls-key``) or the read listener's (``-tls-cert/-tls-key``), a
self-signed certificate made by the test, trusted by the CLI through ``SSL_CERT_FILE``."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from live_manage import start_server
from package_storage.cli.main import main
from package_storage.store.directory import Store
from tls_helpers import self_signed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(certificate, key): self-signed for 127.0.0.1, valid one day."""
    yield self_signed(tmp_path_factory.mktemp("tls"), "127.0.0.1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "store"
    with Store.init(root) as st:
        _, secret = st.service("root").create_token("ops", ["admin"])
    yield root, secret


def cli(*args: str, token: str, ca: Path | None) -> Result:
    env = {"PACKAGE_STORAGE_TOKEN": token, "SSL_CERT_FILE": str(ca) if ca else None}
    return CliRunner().invoke(main, list(args), env=env)


def check_remote_cli_over_https(root: Path, url: str, token: str, crt: Path) -> None:
    assert url.startswith("https://127.0.0.1:")
    local = CliRunner().invoke(main, ["stages", "list", "--store", str(root)])
    remote = cli("stages", "list", "--store", url, token=token, ca=crt)
    assert (remote.exit_code, remote.stdout) == (0, local.stdout), remote.output
    r = cli("stages", "freeze", "snapshot", "--reason", "over https", "--store", url, token=token, ca=crt)  # fmt: skip
    assert (r.exit_code, r.stdout) == (0, "stage snapshot is now frozen: it is served but never changes\n"), r.output  # fmt: skip
    with Store.open(root) as st:
        assert st.catalog.stages().stage("snapshot").policy.frozen
    # Without the CA the certificate is not trusted: one line, exit 1, nothing sent.
    r = cli("stages", "unfreeze", "snapshot", "--reason", "x", "--store", url, token=token, ca=None)  # fmt: skip
    assert r.exit_code == 1 and r.stderr.startswith(f"error: cannot reach the store at {url}: ")
    assert "CERTIFICATE_VERIFY_FAILED" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    with Store.open(root) as st:
        assert st.catalog.stages().stage("snapshot").policy.frozen
    # Plain http to the TLS listener gets no answer of the API.
    r = cli("stages", "list", "--store", url.replace("https:", "http:"), token=token, ca=crt)
    assert r.exit_code == 1 and r.stderr.startswith("error: "), r.output


def test_the_management_listener_with_its_own_certificate(
    cert: tuple[Path, Path], store: tuple[Path, str], tmp_path: Path
) -> None:
    crt, key = cert
    root, token = store
    flags = ("--manage-tls-cert", str(crt), "--manage-tls-key", str(key))
    with start_server(root, tmp_path / "server.log", extra=flags, ca=crt) as live:
        check_remote_cli_over_https(root, live.manage_url, token, crt)
        # The read listener stays plain http (it has no certificate of its own).
        read = live.read_url.replace("https:", "http:")
        assert httpx.get(read + "/health", timeout=30).status_code == 200


def test_the_management_listener_falls_back_to_the_read_listeners_certificate(
    cert: tuple[Path, Path], store: tuple[Path, str], tmp_path: Path
) -> None:
    crt, key = cert
    root, token = store
    flags = ("-tls-cert", str(crt), "-tls-key", str(key))
    with start_server(root, tmp_path / "server.log", extra=flags, ca=crt) as live:
        check_remote_cli_over_https(root, live.manage_url, token, crt)
        trust = ssl.create_default_context(cafile=crt)
        read = httpx.get(live.read_url + "/health", timeout=30, verify=trust)
        assert read.status_code == 200
