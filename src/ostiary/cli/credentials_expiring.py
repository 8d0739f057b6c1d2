"""``ostiary credentials expiring``: credentials that end within some days (the reminders' view)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from ostiary.cli.common import JsonFlag, output, write
from ostiary.cli.credentials import credentials_app
from ostiary.credentials.service import listing

COLUMNS = ["user_id", "credential_id", "kind", "subaccount", "expires_at", "owner"]


@credentials_app.command("expiring")
def credentials_expiring(
    days: Annotated[int, typer.Option(min=0, max=3650, help="Ending within this many days.")] = 30,
    as_json: JsonFlag = False,
) -> None:
    """Active credentials of every technical user that expire within --days, soonest first."""
    with write() as (session, ctx):
        found = listing(session, now=ctx.clock.now(), expiring_within=timedelta(days=days))
    found.sort(key=lambda c: (str(c.expires_at), c.user_id, c.credential_id))
    output(
        [c.to_json() for c in found],
        as_json=as_json,
        title=f"Credentials expiring within {days} days",
        columns=COLUMNS,
    )
