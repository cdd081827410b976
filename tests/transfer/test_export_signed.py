"""End to end: a store with a signing key publishes, exports, and the bundle verifies with gpg."""

from __future__ import annotations

from pathlib import Path

from test_service import make_package
from test_signing import Gpg, gpg  # noqa: F401 - the gpg fixture (own home, agent stopped)

from package_storage.packages.signing import generate_key
from package_storage.store.directory import Store
from package_storage.store.keyring import StoreKeyring
from package_storage.transfer.export import export_bundle


def test_exported_bundle_verifies_with_gpg(gpg: Gpg, tmp_path: Path) -> None:  # noqa: F811
    store = Store.init(tmp_path / "store")
    keyring = StoreKeyring(store.root)
    keyring.set_signing_key(generate_key("Bundle Signer <bundle@example.com>").armored)
    service = store.service("tester")
    service.publish(make_package(tmp_path / "p", "2.0.0"))
    service.promote("hello_nginx", "2.0.0", to="staging")
    service.promote("hello_nginx", "2.0.0", to="production")
    out = tmp_path / "bundle"
    export_bundle(store.catalog, store.blobs, "production", out, kibana_version=None, latest=None)
    store.close()

    public = keyring.signing_public_key()
    assert public is not None
    gpg.ok("--import", input=public.armored.encode())
    zipped = out / "packages" / "hello_nginx-2.0.0.zip"
    done = gpg.run("--status-fd", "1", "--verify", f"{zipped}.sig", str(zipped))
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"[GNUPG:] GOODSIG" in done.stdout
