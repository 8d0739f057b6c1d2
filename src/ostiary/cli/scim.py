"""CLI for SCIM bearer tokens: ``ostiary scim-token create|list|revoke``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ostiary.cli.common import CLI_ACTOR, JsonFlag, output, write
from ostiary.scim import tokens
from ostiary.scim.models import ScimToken

scim_token_app = typer.Typer(
    help="Bearer tokens for SCIM provisioning at /scim/v2 (docs/scim.md).", no_args_is_help=True
)


def token_row(row: ScimToken) -> dict[str, Any]:
    """A token as lists show it (never the token itself: only its hash is kept)."""
    return {
        "token_id": row.token_id,
        "description": row.description,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "status": "revoked" if row.revoked_at else "active",
        "revoked_at": row.revoked_at,
        "last_used_at": row.last_used_at,
        "last_address": row.last_address,
    }


@scim_token_app.command("create")
def create(
    description: Annotated[str, typer.Option(help="Which identity provider uses it.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a SCIM token; it is printed this once."""
    with write() as (session, ctx):
        issued = tokens.create(session, ctx, actor=CLI_ACTOR, description=description)
    output(
        [{"token_id": issued.token_id, "token": issued.token}],
        as_json=as_json,
        title="SCIM token (shown only now)",
    )


@scim_token_app.command("list")
def listing(as_json: JsonFlag = False) -> None:
    """List SCIM tokens with their status and last use."""
    with write() as (session, _ctx):
        rows = [token_row(r) for r in tokens.listing(session)]
    output(rows, as_json=as_json, title="SCIM tokens")


@scim_token_app.command("revoke")
def revoke(token_id: str, as_json: JsonFlag = False) -> None:
    """Revoke a SCIM token; it stops working at once."""
    with write() as (session, ctx):
        row = token_row(tokens.revoke(session, ctx, actor=CLI_ACTOR, token_id=token_id))
    output([row], as_json=as_json, title="SCIM token revoked")
