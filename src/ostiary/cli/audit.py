"""CLI for the keyed audit chain: verify, checkpoint, export (``ostiary audit ...``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from ostiary.audit import checkpoints
from ostiary.audit import service as audit
from ostiary.audit.export import json_lines
from ostiary.audit.verify import verify_chain
from ostiary.cli.common import console, err, write
from ostiary.cli.users import audit_app


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="An exported checkpoint to hold the chain against (default: the newest "
            "one stored in the database).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Recompute the keyed chain; exit 1 naming the first bad event if anything was
    changed, removed, cut off or forged."""
    with write() as (session, ctx):
        anchor = (
            checkpoints.load(checkpoint.read_text(), ctx)
            if checkpoint is not None
            else checkpoints.latest(session, ctx)
        )
        result = verify_chain(session, checkpoint=anchor)
    against = (
        f", checkpoint {result.checkpoint.describe()} ({result.checkpoint.event_count} events)"
        if result.checkpoint
        else ", no checkpoint"
    )
    if result.ok:
        console.print(f"[green]audit chain intact[/green] ({result.events} events{against})")
        return
    err.print(f"[red]audit chain broken at event {result.first_broken_id}:[/red] {result.reason}")
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Also write the signed checkpoint to this file.", dir_okay=False
        ),
    ] = None,
) -> None:
    """Sign the chain's head and count (ES256) and store it; keep the file elsewhere."""
    with write() as (session, ctx):
        row = checkpoints.write(session, ctx)
        document = checkpoints.export(row, ctx)
    if out is not None:
        out.write_text(document + "\n")
        err.print(f"checkpoint of {row.event_count} events written to {out}")
    else:
        typer.echo(document)


@audit_app.command("export")
def audit_export(
    subdomain: Annotated[str | None, typer.Option(help="Only this sub-account.")] = None,
    since: Annotated[datetime | None, typer.Option(help="From this time (ISO 8601).")] = None,
) -> None:
    """All events, oldest first, as JSON lines (with their MACs, to check them later)."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    with write() as (session, _):
        for line in json_lines(audit.iter_events(session, subdomain=subdomain, since=since)):
            typer.echo(line, nl=False)
