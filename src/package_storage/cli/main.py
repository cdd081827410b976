"""The ``package-storage`` command: a click group with one module per command group."""

from __future__ import annotations

import os

import click

from package_storage import __version__
from package_storage.cli.build import build, validate
from package_storage.cli.bundle import export
from package_storage.cli.copystore import copy_store_command
from package_storage.cli.demo import demo
from package_storage.cli.importer import import_command, import_git
from package_storage.cli.keys import keys, verify
from package_storage.cli.mirror import mirror
from package_storage.cli.serve import serve
from package_storage.cli.store import COMMANDS as STORE_COMMANDS
from package_storage.cli.tokens import tokens


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


main.add_command(serve)
main.add_command(export)
main.add_command(build)
main.add_command(validate)
for _command in STORE_COMMANDS:
    main.add_command(_command)
main.add_command(demo)
main.add_command(import_command)
main.add_command(import_git)
main.add_command(mirror)
main.add_command(keys)
main.add_command(verify)
main.add_command(tokens)
main.add_command(copy_store_command)


if __name__ == "__main__":  # pragma: no cover
    main()
