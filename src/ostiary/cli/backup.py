"""``ostiary backup FILE`` and ``ostiary restore FILE`` (docs/backup.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from ostiary.backup.errors import BackupError
from ostiary.cli.common import console, err, settings
from ostiary.errors import OstiaryError

WITHOUT_KEY = (
    "The secret key is NOT in this file. You need the same secret key to restore: keyed "
    "hashes and encrypted signing keys are unusable without it. Keep OSTIARY_SECRET_KEY "
    "(or {key_file}) safe, apart from the backup."
)
WITH_KEY = (
    "This file now holds the key: protect it. Anyone who has it can forge tokens and "
    "sessions, open the sealed signing and CA keys and rewrite the audit chain."
)


def backup_command(
    file: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
    include_secret_key: Annotated[
        bool,
        typer.Option(
            "--include-secret-key", help="Put the secret key into the file too (protect it!)."
        ),
    ] = False,
) -> None:
    """Write a consistent backup of the database while the server runs (a gzip tar, 0600)."""
    # Imported here: every other command would pay for Alembic and the backup modules.
    from ostiary.backup.export import make_backup
    from ostiary.backup.restore import configured_key

    config = settings()
    key = configured_key(config.secret_key, config.data_dir)
    if key is None:
        err.print(
            "[red]backup refused:[/red] no secret key: set OSTIARY_SECRET_KEY (or OSTIARY_DATA_DIR "
            "to the data directory holding secret_key) as the server has it"
        )
        raise typer.Exit(1)
    try:
        summary = make_backup(
            url=config.resolved_database_url,
            target=file,
            secret_key=key,
            include_secret_key=include_secret_key,
        )
    except BackupError as exc:
        err.print(f"[red]backup refused:[/red] {escape(exc.detail)}", soft_wrap=True)
        raise typer.Exit(1) from exc
    except (SQLAlchemyError, OSError) as exc:
        err.print(f"[red]backup failed:[/red] {_first_line(exc)}", soft_wrap=True)
        raise typer.Exit(1) from exc
    console.print(
        f"backup written to [bold]{escape(str(summary.path))}[/bold]: {summary.rows} rows in "
        f"{len(summary.tables)} tables, schema revision {summary.revision}",
        soft_wrap=True,  # a path wrapped at the terminal's width is easy to mis-copy
    )
    warning = (WITH_KEY if include_secret_key else WITHOUT_KEY).format(
        key_file=config.data_dir / "secret_key"
    )
    err.print(
        f"[bold red]WARNING:[/bold red] {escape(warning)}",
        soft_wrap=True,
    )


def restore_command(
    file: Annotated[Path, typer.Argument(help="A file written by `ostiary backup`.")],
) -> None:
    """Restore a backup into an empty data directory or database, then verify the audit chain."""
    from ostiary.audit import checkpoints
    from ostiary.audit.verify import verify_chain
    from ostiary.backup.restore import restore
    from ostiary.context import build_context
    from ostiary.db import transaction

    config = settings()
    try:
        summary = restore(
            url=config.resolved_database_url,
            source=file,
            secret_key=config.secret_key,
            data_dir=config.data_dir,
        )
    except BackupError as exc:
        err.print(f"[red]restore refused:[/red] {escape(exc.detail)}", soft_wrap=True)
        raise typer.Exit(1) from exc
    except (SQLAlchemyError, OSError) as exc:
        err.print(f"[red]restore failed:[/red] {_first_line(exc)}", soft_wrap=True)
        raise typer.Exit(1) from exc
    console.print(
        f"restored {summary.rows} rows in {len(summary.tables)} tables at schema revision "
        f"{escape(summary.revision)} from [bold]{escape(str(file))}[/bold]",
        soft_wrap=True,
    )
    if summary.key_file is not None:
        err.print(
            f"[bold red]WARNING:[/bold red] the secret key from the backup was written to "
            f"{escape(str(summary.key_file))} (0600)",
            soft_wrap=True,
        )
    ctx = build_context(config)
    try:
        with transaction(ctx.read_sessions) as session:
            result = verify_chain(session, checkpoint=checkpoints.latest(session, ctx))
    except OstiaryError as exc:  # a stored checkpoint whose signature fails
        err.print(f"[red]audit checkpoint refused:[/red] {escape(exc.detail)}")
        raise typer.Exit(1) from exc
    finally:
        ctx.engine.dispose()
    if result.ok:
        console.print(f"[green]audit chain intact[/green] ({result.events} events)")
        return
    err.print(
        f"[red]audit chain broken at event {result.first_broken_id}:[/red] "
        f"{escape(str(result.reason))} "
        "(the data is restored; the chain was broken in the backup already)"
    )
    raise typer.Exit(1)


def _first_line(exc: BaseException) -> str:
    """The driver's own message (an unreachable database, a full disk); never the
    statement's parameters, which are row data."""
    return escape(str(getattr(exc, "orig", None) or exc).splitlines()[0])


def register(app: typer.Typer) -> None:
    """Add ``backup`` and ``restore`` to the ``ostiary`` command."""
    app.command("backup")(backup_command)
    app.command("restore")(restore_command)
