"""Findings of an access review (issue 11 item 5), the same through the service, the admin
API and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ostiary.cli.main import app
from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.review.findings import FindingKind, findings
from ostiary.tenancy import service as tenancy
from tests import factories as f
from tests.review_world import World, build, send


@pytest.fixture
def world(ctx: AppContext, clock: FrozenClock) -> World:
    return build(ctx, clock)


def summary(items: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return sorted((i["kind"], i["user_id"], i["credential_kind"], i["role"]) for i in items)


def expected(world: World) -> list[tuple[object, ...]]:
    secret = "technical_user_secret"
    return sorted(
        [
            ("credential_expiring", world.sender.user_id, "certificate", None),
            ("unused_credential", world.idle.user_id, secret, None),
            ("credential_without_expiry", world.sender.user_id, secret, None),
            ("credential_without_expiry", world.idle.user_id, secret, None),
            ("credential_without_expiry", world.orphan.user_id, secret, None),
            ("role_never_exercised", world.sender.user_id, None, "Invoices.send"),
            ("ownerless_technical_user", world.idle.user_id, None, None),
            ("ownerless_technical_user", world.orphan.user_id, None, None),
            ("technical_user_without_credential", world.empty.user_id, None, None),
        ]
    )


def review(ctx: AppContext, clock: FrozenClock, **days: int) -> list[dict[str, object]]:
    with transaction(ctx.read_sessions) as s:
        sub = tenancy.get(s, subdomain="acme")
        return [f.to_json() for f in findings(s, subaccount=sub, now=clock.now(), **days)]


def test_every_kind_of_finding_is_found_and_nothing_else(
    ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    found = review(ctx, clock)
    assert summary(found) == expected(world)
    # Listed by kind in review order, each with a detail a person can act on.
    kinds = [FindingKind(i["kind"]) for i in found]
    assert kinds == sorted(kinds, key=list(FindingKind).index)
    expiring = next(i for i in found if i["kind"] == "credential_expiring")
    assert "(in 10 days)" in str(expiring["detail"])
    role = next(i for i in found if i["kind"] == "role_never_exercised")
    assert role["role_collection"] == "Invoicers" and "invoices" in str(role["detail"])
    idle = next(
        i
        for i in found
        if i["kind"] == "ownerless_technical_user" and i["user_id"] == world.idle.user_id
    )
    assert "disabled" in str(idle["detail"])


def test_thresholds_and_the_clock_move_findings_in_and_out(
    ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    kinds = lambda items: [(i["kind"], i["user_id"]) for i in items]  # noqa: E731
    # A shorter expiry window drops the certificate; a longer unused window spares idle.
    assert ("credential_expiring", world.sender.user_id) not in kinds(
        review(ctx, clock, expiring_days=9)
    )
    assert ("unused_credential", world.idle.user_id) not in kinds(
        review(ctx, clock, unused_days=101)
    )
    # The orphan last used its secret two days ago: unused after another 89 days.
    clock.advance(timedelta(days=89))
    later = kinds(review(ctx, clock))
    assert ("unused_credential", world.orphan.user_id) in later
    # The certificate has expired by then: no longer "expiring", and no longer working.
    assert ("credential_expiring", world.sender.user_id) not in later


def test_calling_the_flow_exercises_the_role(
    ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    with transaction(ctx.sessions) as s:
        send(s, sub=s.merge(world.sub), sender=world.sender, path="invoices", at=clock.now())
    assert [i for i in review(ctx, clock) if i["kind"] == "role_never_exercised"] == []


def test_out_of_range_thresholds_are_refused(ctx: AppContext, world: World) -> None:
    from ostiary.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unused_days"):
        review(ctx, FrozenClock(), unused_days=0)


def test_api_lists_the_findings_for_members_only(
    client: TestClient, ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    boss = f.admin(ctx)
    answer = client.get("/api/v1/subaccounts/acme/findings", headers=f.basic(boss.user_id))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["unused_days"] == 90 and body["expiring_days"] == 30
    assert summary(body["items"]) == expected(world)

    shorter = client.get(
        "/api/v1/subaccounts/acme/findings",
        headers=f.basic(boss.user_id),
        params={"expiring_days": 9},
    ).json()
    assert "credential_expiring" not in {i["kind"] for i in shorter["items"]}

    bad = client.get(
        "/api/v1/subaccounts/acme/findings",
        headers=f.basic(boss.user_id),
        params={"unused_days": 0},
    )
    assert bad.status_code == 422

    stranger = f.person(ctx)
    refused = client.get("/api/v1/subaccounts/acme/findings", headers=f.basic(stranger.user_id))
    assert refused.status_code == 403 and "items" not in refused.json()
    unknown = client.get("/api/v1/subaccounts/nowhere/findings", headers=f.basic(stranger.user_id))
    assert unknown.status_code == 404


def test_cli_prints_the_same_findings_as_json(
    ctx: AppContext, world: World, tmp_path: Path
) -> None:
    env = {
        "OSTIARY_DATABASE_URL": ctx.settings.resolved_database_url,
        "OSTIARY_DATA_DIR": str(tmp_path / "cli"),
        "OSTIARY_SECRET_KEY": ctx.settings.secret_key or "",
        "OSTIARY_SMTP_URL": "",
    }
    runner = CliRunner()
    # The CLI reads the wall clock, which is 100 days before the world's frozen "now":
    # compare only what does not depend on the time.
    result = runner.invoke(app, ["findings", "acme", "--json"], env=env)
    assert result.exit_code == 0, result.output
    items = json.loads(result.output)
    steady = {"ownerless_technical_user", "technical_user_without_credential"}
    assert [x for x in summary(items) if x[0] in steady] == [
        x for x in expected(world) if x[0] in steady
    ]
    table = runner.invoke(app, ["findings", "acme"], env=env)
    assert table.exit_code == 0 and world.empty.user_id in table.output
    missing = runner.invoke(app, ["findings", "nowhere", "--json"], env=env)
    assert missing.exit_code == 1


def test_a_group_owner_answers_for_a_technical_user_while_one_member_is_active(
    ctx: AppContext, clock: FrozenClock, world: World
) -> None:
    from ostiary.groups import ownership
    from ostiary.groups import service as groups
    from ostiary.identity.models import User, UserStatus

    member = f.person(ctx)
    with transaction(ctx.sessions) as s:
        pat = s.merge(f.admin(ctx))
        group = groups.create(s, clock=clock, actor=pat.user_id, name="Integration Team")
        groups.add_member(s, clock=clock, actor=pat.user_id, group=group, user=s.merge(member))
        orphan = s.get(User, world.orphan.id)
        assert orphan is not None
        ownership.give_to_group(s, clock=clock, actor=pat, user=orphan, group=group)
    ownerless = lambda: [  # noqa: E731
        i for i in review(ctx, clock) if i["kind"] == "ownerless_technical_user"
    ]
    assert [i["user_id"] for i in ownerless()] == [world.idle.user_id]
    with transaction(ctx.sessions) as s:
        gone = s.get(User, member.id)
        assert gone is not None
        gone.status = UserStatus.disabled
    flagged = [i for i in ownerless() if i["user_id"] == world.orphan.user_id]
    assert len(flagged) == 1 and "has no active member" in str(flagged[0]["detail"])
