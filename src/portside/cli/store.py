"""``portside store``: the state store itself, with no server running (docs/replicas.md).

``portside store migrate --from sqlite:PATH --to postgresql://...`` moves a single host's state
into an empty PostgreSQL database, for replicas (control/store/transfer.py says how).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from portside.cli.tables import table

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
TARGET_RULE = "a postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE URL"


def _source_path(ctx: click.Context, param: click.Parameter, value: str) -> Path:
    """``sqlite:PATH``: the database file, or a state directory holding ``portside.db``."""
    if not value.startswith("sqlite:") or not value.removeprefix("sqlite:"):
        raise click.BadParameter(f"{value}: must be sqlite:PATH (a state directory's portside.db)")
    path = Path(value.removeprefix("sqlite:"))
    if path.is_dir():
        path = path / "portside.db"
    if not path.is_file():
        raise click.BadParameter(f"{value}: no such file: {path}")
    return path


def _target_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from portside.config import check_store_url
    from portside.control.store.postgres import without_password

    try:
        check_store_url(value)  # the form --store takes, of which only PostgreSQL's is a target
    except ValueError:
        pass
    else:
        if value.startswith(POSTGRES_SCHEMES):
            return value
    raise click.BadParameter(f"{without_password(value)}: must be {TARGET_RULE}")


@click.group("store")
def store() -> None:
    """The state store: move a single host's state to PostgreSQL."""


@store.command("migrate")
@click.option("--from", "source", required=True, metavar="sqlite:PATH", callback=_source_path,
              help="The single host's store: its state directory's portside.db (or the directory); only read.")
@click.option("--to", "target", required=True, metavar="postgresql://...", callback=_target_url,
              help="An empty PostgreSQL database: no portside has written to it.")
def migrate(source: Path, target: str) -> None:
    """Copy a single host's state into an empty PostgreSQL database, for replicas.

    Every table, in one transaction: either all of it arrives or nothing does. Stop the server
    first: what it writes after the copy began is not moved.
    """
    from portside.control.store.postgres import without_password
    from portside.control.store.transfer import TransferError
    from portside.control.store.transfer import migrate as move

    flags = {"source": f"--from sqlite:{source}", "target": f"--to {without_password(target)}"}
    click.echo(f"copying sqlite:{source} into {without_password(target)} in one transaction", err=True)
    try:
        moved = move(source, target)
    except TransferError as exc:
        click.echo(f"portside: {flags[exc.side]}: {exc.message}", err=True)
        sys.exit(1)
    rows = [[name, str(count)] for name, count in moved.rows.items()]
    rows.append(["total", str(sum(moved.rows.values()))])
    click.echo(table(["TABLE", "ROWS"], rows))
    click.echo(f"moved at revision {moved.revision}: start the replicas with --store {without_password(target)}")
