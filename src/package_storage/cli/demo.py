"""``package-storage demo``: a ready-made store with the example packages, served (``make run``).

Steps (each skipped when the store already holds its result, so a second run reuses the store):

1. create the store (default ``./data/demo``; ``PACKAGE_STORAGE_STORE`` is deliberately *not*
   read, so the demo never writes into a real store by accident);
2. publish every example package (``examples/packages/<name>/<version>/``) to snapshot;
3. promote the oldest version of each package to staging and then production, and the newest
   version of a package with several versions to staging only;
4. tag production's current revision ``demo``;
5. make an ``admin`` token ``demo-admin`` for the management API (its secret kept in
   ``DIR/demo-token``, mode 0600, and reused while it works);
6. print the URLs and serve the store (``package_storage.cli.serve.serve_store``): the read
   API on ``--address`` and the management API on ``--manage-address`` (default: the port
   after ``--address``).

The example packages are found in ``<checkout>/examples/packages`` (``--examples`` overrides);
they are not shipped inside the Python package.
"""

from __future__ import annotations

from pathlib import Path

import click

from package_storage.cli import serve as serve_cli
from package_storage.cli.common import OpenStore, StoreCommand, fail, open_store
from package_storage.errors import NotFoundError, PackageStorageError
from package_storage.packages.versions import Version

DEFAULT_DEMO_STORE = "./data/demo"
DEFAULT_ADDRESS = "127.0.0.1:8080"
DEMO_TAG = "demo"
EXAMPLES_RELATIVE = Path("examples") / "packages"


def find_examples(explicit: Path | None = None) -> Path:
    """The folder of example packages: ``explicit``, else ``<checkout>/examples/packages``
    (found above this file when running from a source checkout), else the current directory's
    ``examples/packages``."""
    if explicit is not None:
        if not explicit.is_dir():
            fail(f"examples folder {explicit} does not exist")
        return explicit
    candidates = [parent / EXAMPLES_RELATIVE for parent in Path(__file__).resolve().parents]
    candidates.append(Path.cwd() / EXAMPLES_RELATIVE)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    fail(
        "the example packages were not found: the demo needs a source checkout"
        f" ({EXAMPLES_RELATIVE} beside src/) or --examples DIR"
    )


def example_packages(root: Path) -> list[tuple[str, str, Path]]:
    """``(name, version, folder)`` of ``root/<name>/<version>/``, by name then version."""
    found: list[tuple[str, Version, Path]] = []
    for package in sorted(p for p in root.iterdir() if p.is_dir()):
        for folder in package.iterdir():
            if not (folder / "manifest.yml").is_file():
                continue
            try:
                version = Version.parse_strict(folder.name)
            except PackageStorageError:
                continue
            found.append((package.name, version, folder))
    found.sort(key=lambda item: (item[0], item[1].sort_key))
    if not found:
        fail(f"no example packages (<name>/<version>/manifest.yml) under {root}")
    return [(name, str(version), folder) for name, version, folder in found]


def promotion_plan(packages: list[tuple[str, str, Path]]) -> list[tuple[str, str, tuple[str, ...]]]:
    """``(name, version, stages to promote to in order)``: the oldest version of each package
    goes to production, the newest of a package with several versions to staging."""
    versions: dict[str, list[str]] = {}
    for name, version, _ in packages:
        versions.setdefault(name, []).append(version)
    plan: list[tuple[str, str, tuple[str, ...]]] = []
    for name, vs in versions.items():
        plan.append((name, vs[0], ("staging", "production")))
        if len(vs) > 1:
            plan.append((name, vs[-1], ("staging",)))
    return plan


def _stages_of(store: OpenStore, name: str, version: str) -> set[str]:
    return {e.stage for e in store.catalog.find_entries(name, version)}


def build_demo(store: OpenStore, examples: Path) -> None:
    """Publish, promote and tag (idempotent: steps already done are skipped)."""
    service = store.service
    packages = example_packages(examples)
    present = 0
    for name, version, folder in packages:
        if _stages_of(store, name, version):
            present += 1
            continue
        service.publish(folder, stage="snapshot")
        click.echo(f"published {name} {version} to snapshot")
    if present:
        click.echo(f"reusing the store: {present} of {len(packages)} example packages present")
    graph = store.catalog.stages()
    for name, version, targets in promotion_plan(packages):
        for target in targets:
            held = _stages_of(store, name, version)
            if target in held or any(graph.stage(s).rank > graph.stage(target).rank for s in held):
                continue
            service.promote(name, version, to=target)
            click.echo(f"promoted {name} {version} to {target}")
    try:
        store.catalog.tag("production", DEMO_TAG)
    except NotFoundError:
        made = service.tag("production", DEMO_TAG)
        click.echo(f"tagged production@{made.tag} = revision {made.revision}")


@click.command("demo", cls=StoreCommand)
@click.option(
    "--store",
    "store_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DEMO_STORE,
    show_default=True,
    help="The demo store directory (created or reused; PACKAGE_STORAGE_STORE is not read).",
)
@click.option(
    "--address", default=DEFAULT_ADDRESS, show_default=True, help="HOST:PORT to serve on."
)
@click.option(
    "--examples",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of example packages (default: examples/packages of the source checkout).",
)
@click.option(
    "--manage-address",
    default=None,
    metavar="HOST:PORT",
    help="Where to serve the management API (default: the port after --address).",
)
@click.option("--no-serve", is_flag=True, help="Build the demo store, print the URLs, exit.")
def demo(
    store_dir: Path,
    address: str,
    examples: Path | None,
    manage_address: str | None,
    no_serve: bool,
) -> None:
    """Create a demo store with the example packages in three stages and serve it."""
    root = find_examples(examples)
    manage_address = manage_address or _next_port(address)
    with open_store(store_dir, create=True) as store:
        build_demo(store, root)
        token_file = demo_token(store)
    base = f"http://{address}"
    manage = f"http://{manage_address}"
    urls = [
        (f"{base}/", "registry (default distribution: production)"),
        (f"{base}/snapshot/search", "snapshot: every stage"),
        (f"{base}/staging/search", "staging + production"),
        (f"{base}/production@{DEMO_TAG}/search", "the tagged production revision"),
    ]
    urls.append((f"{manage}/api/v1/openapi.json", f"management API (admin token in {token_file})"))
    urls.append((f"{manage}/", f"operator web UI (sign in with the token in {token_file})"))
    width = max(len(url) for url, _ in urls)
    click.echo(f"demo store: {store_dir}")
    for url, what in urls:
        click.echo(f"  {url.ljust(width)}  {what}")
    click.echo(
        f"  try: PACKAGE_STORAGE_TOKEN=$(cat {token_file}) package-storage list --store {manage}"
    )
    if no_serve:
        return
    from package_storage.cli.serve_manage import ManageOptions
    from package_storage.manage.uploads import DEFAULT_MAX_UPLOAD

    options = ManageOptions(manage_address, DEFAULT_MAX_UPLOAD)
    raise SystemExit(serve_cli.serve_store(store_dir, address, manage=options))


def _next_port(address: str) -> str:
    from package_storage.registry.http.server import parse_address

    try:
        host, port = parse_address(address)
    except PackageStorageError as exc:
        fail(str(exc))
    return f"{host}:{port + 1}" if ":" not in host else f"[{host}]:{port + 1}"


DEMO_TOKEN = "demo-admin"
DEMO_TOKEN_FILE = "demo-token"


def demo_token(store: OpenStore) -> Path:
    """The file holding the secret of the demo's admin token (made again when it no longer
    authenticates)."""
    from package_storage.errors import AuthenticationError

    path = store.directory / DEMO_TOKEN_FILE
    service = store.service
    if path.is_file():
        try:
            service.authenticate(path.read_text().strip())
            return path
        except AuthenticationError:
            pass
    if any(t.name == DEMO_TOKEN and t.revoked is None for t in service.tokens()):
        service.revoke_token(DEMO_TOKEN)
    _, secret = service.create_token(DEMO_TOKEN, ["admin"])
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(secret + "\n")
    click.echo(f"made the admin token {DEMO_TOKEN} (secret in {path})")
    return path
