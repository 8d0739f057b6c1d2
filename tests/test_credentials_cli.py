"""``ostiary credentials``: the same listing, rotation and limits as the API."""

from __future__ import annotations

import json

from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Plan
from tests import factories as f
from tests.test_cli import cli  # noqa: F401  (the fixture)


def test_list_rotate_with_overlap_revoke_and_policy(cli: object, ctx: AppContext) -> None:  # noqa: F811
    run = cli  # type: ignore[assignment]
    owner = f.person(ctx)
    bot, _ = f.technical_user(ctx, owner=owner)
    [only] = json.loads(run("credentials", "list", bot.user_id, "--json"))
    assert only["kind"] == "technical_user_secret" and only["expires_at"] is None
    made = json.loads(
        run(
            "credentials",
            "rotate",
            bot.user_id,
            "--as",
            owner.user_id,
            "--old-valid-until-days",
            "2",
            "--expires-at-days",
            "90",
            "--json",
        )
    )[0]
    assert len(made["password"]) >= 43 and made["expires_at"] is not None
    listed = {
        c["credential_id"]: c for c in json.loads(run("credentials", "list", bot.user_id, "--json"))
    }
    assert set(listed) == {only["credential_id"], made["secret_id"]}
    assert listed[only["credential_id"]]["expires_at"] == made["old_valid_until"]
    assert listed[only["credential_id"]]["status"] == "active"  # still in its overlap
    out = run(
        "credentials",
        "rotate",
        bot.user_id,
        "--as",
        owner.user_id,
        "--old-valid-until-days",
        "367",
        code=1,
    )
    assert "366" in out
    run("credentials", "revoke", bot.user_id, only["credential_id"], "--as", owner.user_id)
    statuses = {
        c["credential_id"]: c["status"]
        for c in json.loads(run("credentials", "list", bot.user_id, "--json"))
    }
    assert statuses == {only["credential_id"]: "revoked", made["secret_id"]: "active"}
    stranger = f.person(ctx)
    run("credentials", "rotate", bot.user_id, "--as", stranger.user_id, code=1)
    with transaction(ctx.sessions) as s:
        tenancy.create(
            s, clock=ctx.clock, actor="t", subdomain="acme-cli", display_name="A", plan=Plan.trial
        )
    assert "at most 30 days" in run(
        "credentials", "policy", "acme-cli", "--max-validity-days", "30"
    )
    assert "no maximum" in run("credentials", "policy", "acme-cli", "--clear")


def test_expiring_lists_active_credentials_ending_within_the_days(
    cli: object,  # noqa: F811
    ctx: AppContext,
) -> None:
    from datetime import timedelta

    from ostiary.credentials.secrets import add_secret
    from ostiary.identity.models import User

    run = cli  # type: ignore[assignment]
    owner = f.person(ctx)
    bot, _ = f.technical_user(ctx, owner=owner)
    with transaction(ctx.sessions) as session:
        row = session.get(User, bot.id)
        assert row is not None
        soon = add_secret(session, ctx, user=row, expires_at=ctx.clock.now() + timedelta(days=10))
        later = add_secret(session, ctx, user=row, expires_at=ctx.clock.now() + timedelta(days=60))
    listed = json.loads(run("credentials", "expiring", "--days", "30", "--json"))
    assert [c["credential_id"] for c in listed] == [soon.row.secret_id]
    assert listed[0]["user_id"] == bot.user_id and listed[0]["owner"] == owner.user_id
    wider = json.loads(run("credentials", "expiring", "--days", "90", "--json"))
    assert [c["credential_id"] for c in wider] == [soon.row.secret_id, later.row.secret_id]
    assert "Credentials expiring within 30 days" in run("credentials", "expiring")
