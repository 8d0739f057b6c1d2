"""CLI for the access review: ``ostiary findings SUBDOMAIN [--json]``."""

from __future__ import annotations

from typing import Annotated

import typer

from ostiary.cli.common import JsonFlag, output, write
from ostiary.review.findings import EXPIRING_DAYS, MAX_DAYS, UNUSED_DAYS, findings
from ostiary.tenancy import service as tenancy


def findings_command(
    subdomain: str,
    unused_days: Annotated[
        int, typer.Option(min=1, max=MAX_DAYS, help="A credential unused this long is a finding.")
    ] = UNUSED_DAYS,
    expiring_days: Annotated[
        int, typer.Option(min=1, max=MAX_DAYS, help="A credential ending this soon is a finding.")
    ] = EXPIRING_DAYS,
    as_json: JsonFlag = False,
) -> None:
    """The access review of SUBDOMAIN: unused, never-ending and expiring credentials, role
    assignments never exercised, ownerless technical users, technical users without a
    credential. Exits 0 with or without findings."""
    with write() as (session, ctx):
        found = findings(
            session,
            subaccount=tenancy.get(session, subdomain=subdomain),
            now=ctx.clock.now(),
            unused_days=unused_days,
            expiring_days=expiring_days,
        )
        rows = [f.to_json() for f in found]
    output(
        rows,
        as_json=as_json,
        title=f"Findings in {subdomain}",
        columns=["kind", "user_id", "credential_id", "role", "detail"],
    )
