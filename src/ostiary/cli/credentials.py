"""CLI for credentials of technical users: list every kind, rotate with overlap, revoke,
and a sub-account's maximum validity. The same services as the API and the console."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer

from ostiary.cli.common import CLI_ACTOR, JsonFlag, output, write
from ostiary.credentials import rotation
from ostiary.credentials.service import listing
from ostiary.errors import InvalidInput
from ostiary.identity import service as identity
from ostiary.tenancy import service as tenancy

credentials_app = typer.Typer(
    help="Credentials of technical users: list, rotate with overlap, revoke.",
    no_args_is_help=True,
)
COLUMNS = ["credential_id", "kind", "subaccount", "expires_at", "status", "last_used_at"]


def _when(value: str | None, days: int | None, now: datetime, name: str) -> datetime | None:
    """An ISO 8601 time with a zone, or a number of days from now (not both)."""
    if value is not None and days is not None:
        raise InvalidInput(f"give --{name} or --{name}-days, not both")
    if days is not None:
        return now + timedelta(days=days)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"--{name} must be an ISO 8601 time, e.g. 2027-01-31T12:00:00Z") from exc


@credentials_app.command("list")
def credentials_list(user_id: str, as_json: JsonFlag = False) -> None:
    """Every credential of a technical user: secrets, client secrets and keys, certificates."""
    with write() as (session, ctx):
        user = identity.get_user(session, user_id=user_id)
        found = [c.to_json() for c in listing(session, now=ctx.clock.now(), user=user)]
    output(found, as_json=as_json, title=f"Credentials of {user_id}", columns=COLUMNS)


@credentials_app.command("rotate")
def credentials_rotate(
    user_id: str,
    actor: Annotated[
        str, typer.Option("--as", help="User ID of the owner or administrator doing this.")
    ],
    old_valid_until: Annotated[
        str | None, typer.Option(help="The current secrets work until then (ISO 8601).")
    ] = None,
    old_valid_until_days: Annotated[
        int | None, typer.Option(help="… or for this many days (overlap).")
    ] = None,
    expires_at: Annotated[
        str | None, typer.Option(help="The new secret ends then (ISO 8601).")
    ] = None,
    expires_at_days: Annotated[int | None, typer.Option(help="… or after this many days.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """A new secret (printed once); the current ones keep working until --old-valid-until
    (default: they stop now)."""
    with write() as (session, ctx):
        now = ctx.clock.now()
        made = rotation.rotate(
            session,
            ctx,
            actor=identity.get_user(session, user_id=actor),
            user=identity.get_user(session, user_id=user_id),
            old_valid_until=_when(old_valid_until, old_valid_until_days, now, "old-valid-until"),
            expires_at=_when(expires_at, expires_at_days, now, "expires-at"),
        )
    output(
        [
            {
                "user_id": user_id,
                "secret_id": made.secret_id,
                "password": made.password,
                "expires_at": made.expires_at.isoformat() if made.expires_at else None,
                "old_valid_until": made.old_valid_until.isoformat(),
            }
        ],
        as_json=as_json,
        title="New secret (the password is shown only now)",
    )


@credentials_app.command("revoke")
def credentials_revoke(
    user_id: str,
    secret_id: str,
    actor: Annotated[str, typer.Option("--as", help="User ID of whoever does this.")],
) -> None:
    """Stop one secret of a technical user at once."""
    with write() as (session, ctx):
        rotation.revoke(
            session,
            ctx,
            actor=identity.get_user(session, user_id=actor),
            user=identity.get_user(session, user_id=user_id),
            secret_id=secret_id,
        )
    typer.echo(f"{secret_id} revoked")


@credentials_app.command("policy")
def credentials_policy(
    subdomain: str,
    max_validity_days: Annotated[
        int | None, typer.Option(help="Longest validity of new technical-user secrets.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Lift the maximum.")] = False,
) -> None:
    """Show, set or lift a sub-account's maximum validity of technical users' secrets."""
    with write() as (session, ctx):
        subaccount = tenancy.get(session, subdomain=subdomain)
        if clear or max_validity_days is not None:
            rotation.set_max_validity(
                session,
                ctx,
                actor=CLI_ACTOR,
                subaccount=subaccount,
                days=None if clear else max_validity_days,
            )
        days = rotation.policy_of(session, subaccount=subaccount)
    typer.echo(f"{subdomain}: " + (f"at most {days} days" if days else "no maximum validity"))
