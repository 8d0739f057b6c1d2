"""CLI for groups and invitations (the same services as the API; changes audited as ``cli``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ostiary.cli.common import CLI_ACTOR, JsonFlag, context, err, output, write
from ostiary.db import transaction
from ostiary.errors import OstiaryError
from ostiary.groups import assignments, invitations, ownership
from ostiary.groups import service as groups
from ostiary.identity import service as identity
from ostiary.mail import service as mail
from ostiary.tenancy import service as tenancy

group_app = typer.Typer(
    help="Groups: members, role collections per sub-account, ownership.", no_args_is_help=True
)
invite_app = typer.Typer(help="Invitations to a sub-account by e-mail.", no_args_is_help=True)
GroupRef = Annotated[str, typer.Argument(help="Group ID (G000001) or exact name.")]
Actor = Annotated[str, typer.Option("--as", help="User ID of whoever does this.")]


@group_app.command("create")
def group_create(
    name: str,
    description: Annotated[str, typer.Option(help="What the group is for.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a group."""
    with write() as (session, ctx):
        group = groups.create(
            session, clock=ctx.clock, actor=CLI_ACTOR, name=name, description=description
        )
        row = {"group_id": group.group_id, "name": group.name}
    output([row], as_json=as_json, title="Group")


@group_app.command("list")
def group_list(
    query: Annotated[str, typer.Option(help="Search in ID and name.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Groups with their members."""
    with write() as (session, _):
        rows = [
            {
                "group_id": g.group_id,
                "name": g.name,
                "description": g.description,
                "members": [u.user_id for u in groups.members(session, group=g)],
            }
            for g in groups.list_groups(session, query=query, limit=1000)
        ]
    output(rows, as_json=as_json, title="Groups", columns=["group_id", "name", "members"])


@group_app.command("show")
def group_show(group: GroupRef, as_json: JsonFlag = False) -> None:
    """A group's members and the technical users it owns."""
    with write() as (session, _):
        found = groups.find(session, reference=group)
        owns = {u.user_id for u in groups.owned_technical_users(session, group=found)}
        rows = [
            {"user_id": u.user_id, "kind": u.kind.value, "status": u.status.value}
            for u in groups.members(session, group=found)
        ]
        rows += [{"user_id": t, "kind": "owned technical user", "status": ""} for t in sorted(owns)]
    output(rows, as_json=as_json, title=f"Group {group}")


@group_app.command("add-member")
def group_add_member(group: GroupRef, user_id: str) -> None:
    """Put a person or technical user in a group."""
    with write() as (session, ctx):
        found = groups.find(session, reference=group)
        user = identity.get_user(session, user_id=user_id)
        added = groups.add_member(session, clock=ctx.clock, actor=CLI_ACTOR, group=found, user=user)
    typer.echo(f"{user_id} {'added to' if added else 'was already in'} {group}")


@group_app.command("remove-member")
def group_remove_member(group: GroupRef, user_id: str) -> None:
    """Take a user out of a group; grants through it end within 1 s everywhere."""
    with write() as (session, ctx):
        found = groups.find(session, reference=group)
        user = identity.get_user(session, user_id=user_id)
        removed = groups.remove_member(
            session, clock=ctx.clock, actor=CLI_ACTOR, group=found, user=user
        )
    if not removed:
        err.print(f"{user_id} is not in {group}")
        raise typer.Exit(1)
    typer.echo(f"{user_id} removed from {group}")


@group_app.command("delete")
def group_delete(group: GroupRef) -> None:
    """Delete a group (refused while it owns technical users)."""
    with write() as (session, ctx):
        groups.delete_group(
            session, clock=ctx.clock, actor=CLI_ACTOR, group=groups.find(session, reference=group)
        )
    typer.echo(f"deleted {group}")


@group_app.command("assign")
def group_assign(
    group: GroupRef,
    subdomain: Annotated[str, typer.Option("--subaccount", help="Sub-account subdomain.")],
    collections: Annotated[
        list[str] | None, typer.Argument(help="Role collections (none: take all away).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Replace the role collections a group holds in a sub-account."""
    with write() as (session, ctx):
        found = groups.find(session, reference=group)
        names = assignments.set_group_collections(
            session,
            clock=ctx.clock,
            actor=CLI_ACTOR,
            subaccount=tenancy.get(session, subdomain=subdomain),
            group=found,
            names=collections or [],
        )
        row = {"group_id": found.group_id, "role_collections": names}
    output([row], as_json=as_json, title=f"Group {group} in {subdomain}")


@group_app.command("own")
def group_own(technical_user: str, group: GroupRef, actor: Actor) -> None:
    """Make a group the owner of a technical user (``--as`` a member of the group)."""
    from ostiary.identity import technical

    with write() as (session, ctx):
        who = identity.get_user(session, user_id=actor)
        user = identity.get_user(session, user_id=technical_user)
        if not technical.may_manage(session, actor=who, user=user):
            err.print(f"[red]forbidden:[/red] {actor} may not manage {technical_user}")
            raise typer.Exit(1)
        found = groups.find(session, reference=group)
        ownership.give_to_group(session, clock=ctx.clock, actor=who, user=user, group=found)
    typer.echo(f"{technical_user} is now owned by group {group}")


@invite_app.command("send")
def invite_send(
    subdomain: str,
    email: str,
    actor: Actor,
    role: Annotated[list[str], typer.Option("--role", help="Member role (repeatable).")],
    description: Annotated[str, typer.Option(help="Member description.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Invite an e-mail address; the mail with the single-use link is sent at once."""
    ctx = context()
    try:
        with transaction(ctx.sessions) as session:
            sent = invitations.invite(
                session,
                ctx,
                actor=identity.get_user(session, user_id=actor),
                subaccount=tenancy.get(session, subdomain=subdomain),
                email=email,
                roles=role,
                description=description,
            )
            row = {
                "invitation_id": sent.invitation.invitation_id,
                "email": sent.invitation.email,
                "roles": list(sent.invitation.roles),
                "expires_at": sent.invitation.expires_at,
            }
        mail.deliver(ctx.sessions, ctx.transport, ctx.clock, [sent.mail_id])
    except OstiaryError as exc:
        err.print(f"[red]{exc.code}:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    finally:
        ctx.engine.dispose()
    output([row], as_json=as_json, title="Invitation")


@invite_app.command("list")
def invite_list(subdomain: str, as_json: JsonFlag = False) -> None:
    """Pending invitations of a sub-account."""
    with write() as (session, ctx):
        rows = [
            {
                "invitation_id": i.invitation_id,
                "email": i.email,
                "roles": list(i.roles),
                "invited_by": i.invited_by,
                "expires_at": i.expires_at,
            }
            for i in invitations.pending(
                session, ctx, subaccount=tenancy.get(session, subdomain=subdomain)
            )
        ]
    output(rows, as_json=as_json, title=f"Pending invitations of {subdomain}")


@invite_app.command("withdraw")
def invite_withdraw(subdomain: str, invitation_id: str, actor: Actor) -> None:
    """Withdraw a pending invitation; its link stops working."""
    with write() as (session, ctx):
        invitations.withdraw(
            session,
            ctx,
            actor=identity.get_user(session, user_id=actor),
            subaccount=tenancy.get(session, subdomain=subdomain),
            invitation_id=invitation_id,
        )
    typer.echo(f"withdrew {invitation_id}")
