"""``ostiary subaccount export|import``: a sub-account's configuration as a JSON file, and
that file imported (docs/transfer.md). Changes are audited with the actor ``cli``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from ostiary.cli.common import CLI_ACTOR, JsonFlag, console, context, err, write
from ostiary.cli.tenancy import subaccount_app
from ostiary.errors import OstiaryError
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Subaccount
from ostiary.transfer import export, models, service

_STYLE = {"create": "green", "update": "yellow", "unchanged": "dim"}


@subaccount_app.command("export")
def export_command(
    subdomain: str,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of standard output.")
    ] = None,
) -> None:
    """Print the sub-account's configuration as JSON: roles, role collections, flows,
    trusted CAs, members and assignments by user ID. Never a secret or private key."""
    with write() as (session, ctx):
        subaccount = tenancy.get(session, subdomain=subdomain)
        text = models.dump(export.build(session, clock=ctx.clock, subaccount=subaccount))
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        err.print(f"exported {subdomain} to {out}")


@subaccount_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="An export file (ostiary.subaccount/1).")],
    subdomain: Annotated[
        str,
        typer.Option("--subdomain", help="The sub-account to import into (created if missing)."),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the diff; change nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import an export file: creates the sub-account if missing, creates and updates what
    the file names, never deletes what it leaves out. One transaction; idempotent."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        err.print(f"[red]cannot read {file}:[/red] {exc.strerror}")
        raise typer.Exit(1) from exc
    ctx = context()
    try:
        result = service.run(
            ctx.sessions,
            ctx,
            actor=CLI_ACTOR,
            subdomain=subdomain,
            document=models.parse(raw),
            dry_run=dry_run,
            authorize=_operator,
        )
    except OstiaryError as exc:
        err.print(f"[red]{exc.code}:[/red] {escape(exc.detail)}")  # names from the file
        raise typer.Exit(1) from exc
    finally:
        ctx.engine.dispose()
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "subdomain": result.subdomain,
                    "dry_run": result.dry_run,
                    "counts": result.counts(),
                    "changes": [
                        {
                            "kind": c.kind,
                            "name": c.name,
                            "action": c.action,
                            "fields": list(c.fields),
                        }
                        for c in result.changes
                    ],
                }
            )
        )
        return
    title = f"{'Dry run: would import' if dry_run else 'Imported'} into {subdomain}"
    table = Table(title=title)
    for column in ("kind", "name", "action", "fields"):
        table.add_column(column)
    for c in result.changes:
        style = _STYLE[c.action]
        # Names are the file's text (a subject DN may hold "[/bold]"), never markup.
        table.add_row(c.kind, escape(c.name), f"[{style}]{c.action}[/{style}]", ", ".join(c.fields))
    console.print(table)
    counts = result.counts()
    console.print(
        f"{counts['create']} to create, {counts['update']} to update, "
        f"{counts['unchanged']} unchanged" + (" (dry run: nothing was changed)" if dry_run else "")
    )


def _operator(session: Session, target: Subaccount | None) -> None:
    """The command line is the operator: it may import anywhere."""
