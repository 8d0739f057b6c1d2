"""CLI for technical users and the audit trail."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ostiary.audit import service as audit
from ostiary.cli.common import JsonFlag, output, write
from ostiary.identity import service as identity
from ostiary.identity import technical
from ostiary.tenancy import service as tenancy

technical_app = typer.Typer(
    help="Technical users: create, reset, transfer, inventory.", no_args_is_help=True
)
audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)


def _secret(as_json: bool, user_id: str, password: str) -> None:
    output(
        [{"user_id": user_id, "password": password}],
        as_json=as_json,
        title="Technical user (the password is shown only now)",
    )


@technical_app.command("create")
def technical_create(
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    owner: Annotated[str, typer.Option(help="User ID of the owning person.")],
    subaccount: Annotated[str | None, typer.Option(help="Home sub-account.")] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a technical user; its generated password is printed once."""
    with write() as (session, ctx):
        creator = identity.get_user(session, user_id=owner)
        home = tenancy.get(session, subdomain=subaccount) if subaccount else None
        issued = technical.create(
            session, ctx, creator=creator, display_name=name, description=description, home=home
        )
    _secret(as_json, issued.user.user_id, issued.secret)


@technical_app.command("reset")
def technical_reset(
    user_id: str,
    actor: Annotated[
        str, typer.Option("--as", help="User ID of the owner or administrator doing this.")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Give a technical user a new password (printed once); the old one stops at once."""
    with write() as (session, ctx):
        user = identity.get_user(session, user_id=user_id)
        issued = technical.reset_secret(
            session, ctx, actor=identity.get_user(session, user_id=actor), user=user
        )
    _secret(as_json, user_id, issued.secret)


@technical_app.command("transfer")
def technical_transfer(
    user_id: str,
    owner: Annotated[str, typer.Option(help="User ID of the new owner.")],
    actor: Annotated[str, typer.Option("--as", help="User ID of whoever does this.")],
) -> None:
    """Hand a technical user to another owner."""
    with write() as (session, ctx):
        user = identity.get_user(session, user_id=user_id)
        technical.transfer(
            session,
            ctx,
            actor=identity.get_user(session, user_id=actor),
            user=user,
            owner=identity.get_user(session, user_id=owner),
        )
    typer.echo(f"{user_id} is now owned by {owner}")


@technical_app.command("list")
def technical_list(
    subdomain: str,
    search: Annotated[str, typer.Option(help="Filter by ID, name or owner.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """The inventory of a sub-account's technical users (owner, credentials, roles)."""
    with write() as (session, _):
        s = tenancy.get(session, subdomain=subdomain)
        rows: list[dict[str, Any]] = [
            {
                "user_id": r.user.user_id,
                "name": r.user.display_name,
                "owner": r.owner.user_id if r.owner else None,
                "ownerless": r.ownerless,
                "created": r.user.created_at.date().isoformat(),
                "role_collections": r.role_collections,
                "roles": r.roles,
            }
            for r in technical.inventory(session, subaccount=s, search=search, limit=1000)
        ]
    output(rows, as_json=as_json, title=f"Technical users of {subdomain}")


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option(help="How many events.")] = 20,
    subdomain: Annotated[str | None, typer.Option(help="Only this sub-account.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The newest audit events."""
    with write() as (session, _):
        rows = [
            {
                "id": e.id,
                "time": e.occurred_at.isoformat(timespec="seconds"),
                "actor": e.actor,
                "action": e.action,
                "subdomain": e.subdomain,
                "target": e.target,
                "detail": e.detail,
            }
            for e in audit.list_events(session, limit=limit, subdomain=subdomain)
        ]
    output(
        rows,
        as_json=as_json,
        title="Audit events",
        columns=["id", "time", "actor", "action", "subdomain", "target"],
    )
