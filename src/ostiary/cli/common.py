"""Shared helpers of the CLI: settings, context, output as rich tables or JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from ostiary.context import AppContext, build_context
from ostiary.db import transaction
from ostiary.errors import OstiaryError
from ostiary.settings import Settings

console = Console()
err = Console(stderr=True)
#: Who the audit trail names for changes made from the command line.
CLI_ACTOR = "cli"

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def settings() -> Settings:
    """Settings from the environment, or a clean exit with the reason."""
    try:
        return Settings()
    except ValueError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def context() -> AppContext:
    """An application context for one command."""
    return build_context(settings())


@contextmanager
def write() -> Iterator[tuple[Session, AppContext]]:
    """A write transaction; domain errors become a red message and exit code 1."""
    ctx = context()
    try:
        with transaction(ctx.sessions) as session:
            yield session, ctx
    except OstiaryError as exc:
        err.print(f"[red]{exc.code}:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    finally:
        ctx.engine.dispose()


def output(
    rows: Sequence[dict[str, Any]],
    *,
    as_json: bool,
    title: str,
    columns: Sequence[str] | None = None,
) -> None:
    """Print rows as a rich table for people or JSON for scripts."""
    if as_json:
        console.print_json(json.dumps(list(rows), default=str))
        return
    columns = list(columns or (rows[0].keys() if rows else []))
    table = Table(title=title)
    for column in columns:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list | tuple | set):
        return ", ".join(str(v) for v in value)
    return str(value)
