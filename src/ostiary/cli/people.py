"""CLI for people in the directory: ``ostiary user list|delete``."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.exc import OperationalError

from ostiary.cli.common import JsonFlag, output, write
from ostiary.db import purge_freed_space
from ostiary.identity import directory, erasure
from ostiary.identity import service as identity
from ostiary.identity.models import UserKind, UserStatus

user_app = typer.Typer(help="People and technical users: search, erase.", no_args_is_help=True)


@user_app.command("list")
def user_list(
    query: Annotated[str, typer.Option(help="Part of a user ID, e-mail or name.")] = "",
    kind: Annotated[UserKind | None, typer.Option(help="person or technical.")] = None,
    status: Annotated[UserStatus | None, typer.Option(help="Only users in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    after: Annotated[str | None, typer.Option(help="Start after this user ID.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Search the directory, ordered by user ID."""
    with write() as (session, _):
        rows = [
            {
                "user_id": u.user_id,
                "kind": u.kind.value,
                "status": u.status.value,
                "name": u.display_name,
                "email": u.email,
                "created": u.created_at.date().isoformat(),
            }
            for u in directory.search(
                session,
                viewer=None,
                query=query,
                kind=kind,
                status=status,
                limit=limit,
                after=after,
            )
        ]
    output(rows, as_json=as_json, title="Users")


@user_app.command("delete")
def user_delete(
    user_id: str,
    actor: Annotated[str, typer.Option("--as", help="User ID of the platform administrator.")],
    as_json: JsonFlag = False,
) -> None:
    """Erase a person (GDPR): personal data and credentials go, the user ID stays.

    Refused (exit 1, listing them) while the person alone owns technical users."""
    with write() as (session, ctx):
        admin = identity.get_user(session, user_id=actor)
        if not admin.is_platform_admin:
            typer.echo(f"{actor} is not a platform administrator", err=True)
            raise typer.Exit(1)
        done = erasure.erase(
            session, ctx, actor=admin.user_id, user=identity.get_user(session, user_id=user_id)
        )
    try:
        purge_freed_space(ctx.engine)
    except OperationalError as exc:  # erased and committed; the next erasure compacts again
        typer.echo(f"erased, but compacting the SQLite file failed ({exc}); run VACUUM", err=True)
    output(
        [
            {
                "user_id": done.user_id,
                "status": UserStatus.erased.value,
                "audit_events_pseudonymised": done.audit_events,
                "mails_scrubbed": done.mails,
            }
        ],
        as_json=as_json,
        title="Erased",
    )
