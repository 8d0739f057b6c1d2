"""CLI for flows, the message processing log and the access explanation."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ostiary.cli.common import CLI_ACTOR, JsonFlag, console, output, write
from ostiary.gate.admission import explain
from ostiary.runtime import flows
from ostiary.runtime.models import FlowMode, Message
from ostiary.tenancy import service as tenancy

flow_app = typer.Typer(help="Integration flows of a sub-account.", no_args_is_help=True)
access_app = typer.Typer(help="Access decisions.", no_args_is_help=True)
message_app = typer.Typer(help="The message processing log.", no_args_is_help=True)


@flow_app.command("create")
def flow_create(
    subdomain: str,
    path: str,
    role: Annotated[str, typer.Option(help="Required role.")] = "ESBMessaging.send",
    auth: Annotated[
        list[str] | None,
        typer.Option("--auth", help="basic, oauth, certificate (repeatable; default basic)."),
    ] = None,
    mode: Annotated[FlowMode, typer.Option(help="store or forward.")] = FlowMode.store,
    receiver: Annotated[str | None, typer.Option(help="Receiver URL (forward mode).")] = None,
) -> None:
    """Create a flow at /t/SUBDOMAIN/http/PATH."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        flow = flows.create(
            session,
            clock=ctx.clock,
            actor=CLI_ACTOR,
            subaccount=s,
            path=path,
            required_role=role,
            auth=auth or ["basic"],
            mode=mode,
            receiver_url=receiver,
        )
        endpoint = f"{ctx.settings.public_url}/t/{subdomain}/http/{flow.path}"
    typer.echo(f"created {endpoint}")


@flow_app.command("list")
def flow_list(subdomain: str, as_json: JsonFlag = False) -> None:
    """List the flows of a sub-account."""
    with write() as (session, _):
        s = tenancy.get(session, subdomain=subdomain)
        rows = [flows.describe(f) for f in flows.list_flows(session, subaccount=s)]
    output(
        rows,
        as_json=as_json,
        title=f"Flows of {subdomain}",
        columns=["path", "required_role", "auth", "mode", "enabled"],
    )


@flow_app.command("enable")
def flow_enable(
    subdomain: str,
    path: str,
    off: Annotated[bool, typer.Option("--off", help="Disable instead.")] = False,
) -> None:
    """Enable (or with --off disable) a flow."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        flows.change(
            session, clock=ctx.clock, actor=CLI_ACTOR, subaccount=s, path=path, enabled=not off
        )
    typer.echo(f"{path} {'disabled' if off else 'enabled'}")


@access_app.command("explain")
def access_explain(
    subdomain: str,
    user_id: Annotated[str, typer.Option("--user", help="User ID.")],
    flow: Annotated[str, typer.Option("--flow", help="Flow path.")],
    as_json: JsonFlag = False,
) -> None:
    """Why USER may or may not call FLOW: the chain, or the missing link. Exit 1 on deny."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        result = explain(
            ctx.grants.refresh(),
            user_id=user_id,
            subdomain=s.subdomain,
            path=flow,
            now=ctx.clock.now(),
        )
    if as_json:
        output(
            [
                {
                    "decision": result.decision,
                    "missing_link": result.missing_link,
                    "chain": result.chain,
                    "role_collections": result.role_collections,
                    "roles": result.roles,
                }
            ],
            as_json=True,
            title="",
        )
    else:
        colour = "green" if result.decision == "allow" else "red"
        console.print(f"[bold {colour}]{result.decision}[/bold {colour}]: {user_id} → {flow}")
        for step in result.chain:
            console.print(f"  • {step}")
        if result.missing_link:
            console.print(f"  [red]✗ missing link:[/red] {result.missing_link}")
    if result.decision != "allow":
        raise typer.Exit(1)


@message_app.command("list")
def message_list(
    subdomain: str,
    sender: Annotated[str | None, typer.Option(help="Only this sender's messages.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """The newest MPL entries of a sub-account."""
    from sqlalchemy import select

    with write() as (session, _):
        s = tenancy.get(session, subdomain=subdomain)
        query = (
            select(Message)
            .where(Message.subaccount_id == s.id)
            .order_by(Message.received_at.desc())
            .limit(limit)
        )
        if sender:
            query = query.where(Message.sender == sender.upper())
        rows: list[dict[str, Any]] = [
            {
                "message_id": m.id,
                "received_at": m.received_at.isoformat(timespec="seconds"),
                "flow": m.flow_path,
                "sender": m.sender,
                "credential": m.credential_id,
                "auth": m.auth_method,
                "status": m.status.value,
                "size": m.size,
            }
            for m in session.scalars(query)
        ]
    output(rows, as_json=as_json, title=f"Messages of {subdomain}")


@message_app.command("cleanup")
def message_cleanup() -> None:
    """Delete messages older than each sub-account's retention now."""
    from ostiary.runtime.retention import cleanup

    with write() as (session, ctx):
        removed = cleanup(session, clock=ctx.clock)
    typer.echo(f"removed {removed} messages")
