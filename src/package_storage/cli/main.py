"""The ``package-storage`` command: a click group with one module per command group."""

from __future__ import annotations

import importlib
import os

import click

from package_storage import __version__
from package_storage.cli.gcpause import paused_gc

# Where each command lives: a command's module is imported when it runs (or for --help), so
# `publish` does not pay for the server, the exporter or the web UI (issue 15: CLI start-up).
_LAZY: dict[str, tuple[str, str]] = {
    "serve": ("package_storage.cli.serve", "serve"),
    "export": ("package_storage.cli.bundle", "export"),
    "build": ("package_storage.cli.build", "build"),
    "validate": ("package_storage.cli.build", "validate"),
    "demo": ("package_storage.cli.demo", "demo"),
    "import": ("package_storage.cli.importer", "import_command"),
    "import-git": ("package_storage.cli.importer", "import_git"),
    "mirror": ("package_storage.cli.mirror", "mirror"),
    "keys": ("package_storage.cli.keys", "keys"),
    "verify": ("package_storage.cli.keys", "verify"),
    "tokens": ("package_storage.cli.tokens", "tokens"),
    "copy-store": ("package_storage.cli.copystore", "copy_store_command"),
}
_STORE_COMMANDS = "package_storage.cli.store"  # its COMMANDS: publish, promote, stages, ...


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (see :data:`_LAZY`); commands added
    with ``add_command`` work as usual."""

    def _store_commands(self) -> dict[str, click.Command]:
        with paused_gc():
            module = importlib.import_module(_STORE_COMMANDS)
        return {c.name: c for c in module.COMMANDS if c.name}

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx)) | set(_LAZY) | set(self._store_commands())
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        where = _LAZY.get(cmd_name)
        if where is not None:
            with paused_gc():
                command = getattr(importlib.import_module(where[0]), where[1])
        else:
            command = self._store_commands().get(cmd_name)
        if isinstance(command, click.Command):
            self.add_command(command, cmd_name)
            return command
        return None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="package-storage")
@click.option(
    "--limit",
    "limit_values",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Change one package size limit for this run (e.g. --limit file_bytes=536870912;"
    " repeatable; same as PACKAGE_STORAGE_MAX_<FIELD>; fields and defaults: docs/safety.md).",
)
def main(limit_values: tuple[str, ...]) -> None:
    """Store, stage and serve Elastic integration packages."""
    if limit_values:
        from package_storage.errors import ConfigError
        from package_storage.packages import limits

        try:
            assignments = [limits.parse_assignment(v) for v in limit_values]
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--limit") from None
        for var, value in assignments:  # the environment: worker processes see them too
            os.environ[var] = str(value)
        limits.set_active(None)


if __name__ == "__main__":  # pragma: no cover
    main()
