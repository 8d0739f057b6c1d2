"""CLI for sub-accounts, members, role collections and assignments (the same services as the
API; changes are audited with the actor ``cli``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ostiary.access import service as access
from ostiary.cli.common import CLI_ACTOR, JsonFlag, output, write
from ostiary.identity import service as identity
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Member, Plan, Subaccount
from ostiary.tenancy.plans import PLAN_LIMITS

subaccount_app = typer.Typer(
    help="Sub-accounts: create, list, rename, delete.", no_args_is_help=True
)
member_app = typer.Typer(help="Members of a sub-account.", no_args_is_help=True)
collection_app = typer.Typer(help="Role collections of a sub-account.", no_args_is_help=True)
assign_app = typer.Typer(help="Role collections assigned to users.", no_args_is_help=True)


def _sub_row(session: Any, s: Subaccount) -> dict[str, Any]:
    return {
        "subdomain": s.subdomain,
        "display_name": s.display_name,
        "plan": s.plan.value,
        "limits": PLAN_LIMITS[s.plan].as_dict(),
        "usage": tenancy.usage(session, subaccount=s),
    }


@subaccount_app.command("create")
def subaccount_create(
    subdomain: str,
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    plan: Annotated[Plan, typer.Option(help="trial or standard.")] = Plan.trial,
    admin: Annotated[str | None, typer.Option(help="User ID of the first Administrator.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a sub-account (optionally with its first Administrator)."""
    with write() as (session, ctx):
        creator = identity.get_user(session, user_id=admin) if admin else None
        s = tenancy.create(
            session,
            clock=ctx.clock,
            actor=CLI_ACTOR,
            subdomain=subdomain,
            display_name=name,
            plan=plan,
            creator=creator,
        )
        output(
            [_sub_row(session, s)],
            as_json=as_json,
            title="Sub-account created",
            columns=["subdomain", "display_name", "plan"],
        )


@subaccount_app.command("list")
def subaccount_list(as_json: JsonFlag = False) -> None:
    """List all sub-accounts with plan, limits and usage."""
    from sqlalchemy import select

    with write() as (session, _):
        rows = [
            _sub_row(session, s)
            for s in session.scalars(select(Subaccount).order_by(Subaccount.subdomain))
        ]
    output(
        rows,
        as_json=as_json,
        title="Sub-accounts",
        columns=["subdomain", "display_name", "plan", "usage"],
    )


@subaccount_app.command("rename")
def subaccount_rename(subdomain: str, name: Annotated[str, typer.Option("--name")]) -> None:
    """Change a sub-account's display name."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        tenancy.update(session, clock=ctx.clock, actor=CLI_ACTOR, subaccount=s, display_name=name)
    typer.echo(f"renamed {subdomain}")


@subaccount_app.command("delete")
def subaccount_delete(
    subdomain: str,
    confirm: Annotated[
        str | None,
        typer.Option(help="Repeat the subdomain to delete a sub-account that still has content."),
    ] = None,
) -> None:
    """Delete a sub-account."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        tenancy.delete_subaccount(
            session, clock=ctx.clock, actor=CLI_ACTOR, subaccount=s, confirm=confirm
        )
    typer.echo(f"deleted {subdomain}")


def _member_row(m: Member, user: Any) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "name": user.display_name,
        "kind": user.kind.value,
        "roles": list(m.roles),
        "description": m.description,
    }


@member_app.command("add")
def member_add(
    subdomain: str,
    user_id: str,
    role: Annotated[
        list[str], typer.Option("--role", help="Administrator, Developer or Viewer (repeatable).")
    ],
    description: Annotated[str, typer.Option(help="Why this user is a member.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Add a user to a sub-account with member roles."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        user = identity.get_user(session, user_id=user_id)
        m = tenancy.add_member(
            session,
            clock=ctx.clock,
            actor=CLI_ACTOR,
            subaccount=s,
            user=user,
            roles=role,
            description=description,
        )
        output([_member_row(m, user)], as_json=as_json, title="Member added")


@member_app.command("list")
def member_list(subdomain: str, as_json: JsonFlag = False) -> None:
    """List the members of a sub-account."""
    with write() as (session, _):
        s = tenancy.get(session, subdomain=subdomain)
        rows = [_member_row(m, u) for m, u in tenancy.list_members(session, subaccount=s)]
    output(rows, as_json=as_json, title=f"Members of {subdomain}")


@member_app.command("change")
def member_change(
    subdomain: str,
    user_id: str,
    role: Annotated[list[str] | None, typer.Option("--role", help="New member roles.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
) -> None:
    """Change a member's roles or description."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        user = identity.get_user(session, user_id=user_id)
        tenancy.change_member(
            session,
            clock=ctx.clock,
            actor=CLI_ACTOR,
            subaccount=s,
            user=user,
            roles=role or None,
            description=description,
        )
    typer.echo(f"changed {user_id} in {subdomain}")


@member_app.command("remove")
def member_remove(subdomain: str, user_id: str) -> None:
    """Remove a member (and their role collections in the sub-account)."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        user = identity.get_user(session, user_id=user_id)
        tenancy.remove_member(session, clock=ctx.clock, actor=CLI_ACTOR, subaccount=s, user=user)
    typer.echo(f"removed {user_id} from {subdomain}")


@collection_app.command("create")
def collection_create(
    subdomain: str,
    name: str,
    role: Annotated[list[str], typer.Option("--role", help="Role name (repeatable).")],
    description: Annotated[str, typer.Option(help="What the collection is for.")] = "",
) -> None:
    """Create a role collection."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        access.create_collection(
            session,
            clock=ctx.clock,
            actor=CLI_ACTOR,
            subaccount=s,
            name=name,
            roles=role,
            description=description,
        )
    typer.echo(f"created role collection {name!r} in {subdomain}")


@collection_app.command("list")
def collection_list(subdomain: str, as_json: JsonFlag = False) -> None:
    """List role collections with their roles."""
    with write() as (session, _):
        s = tenancy.get(session, subdomain=subdomain)
        rows = [
            {"name": c.name, "roles": roles, "assigned_users": n, "description": c.description}
            for c, roles, n in access.list_collections(session, subaccount=s)
        ]
    output(rows, as_json=as_json, title=f"Role collections of {subdomain}")


@collection_app.command("delete")
def collection_delete(subdomain: str, name: str) -> None:
    """Delete a role collection and its assignments."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        access.delete_collection(session, clock=ctx.clock, actor=CLI_ACTOR, subaccount=s, name=name)
    typer.echo(f"deleted role collection {name!r}")


@assign_app.command("set")
def assign_set(
    subdomain: str,
    user_id: str,
    collection: Annotated[
        list[str] | None, typer.Argument(help="Role collections (none: remove all).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Replace the role collections a user holds in a sub-account."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        user = identity.get_user(session, user_id=user_id)
        names = access.set_user_collections(
            session,
            clock=ctx.clock,
            actor=CLI_ACTOR,
            subaccount=s,
            user=user,
            names=collection or [],
        )
    output(
        [{"user_id": user_id, "role_collections": names}],
        as_json=as_json,
        title=f"Role collections in {subdomain}",
    )


@assign_app.command("show")
def assign_show(subdomain: str, user_id: str, as_json: JsonFlag = False) -> None:
    """Show the role collections a user holds in a sub-account."""
    with write() as (session, _):
        s = tenancy.get(session, subdomain=subdomain)
        user = identity.get_user(session, user_id=user_id)
        names = access.user_collections(session, subaccount=s, user=user)
    output(
        [{"user_id": user_id, "role_collections": names}],
        as_json=as_json,
        title=f"Role collections in {subdomain}",
    )
