"""User search and erasure (issue 12 item 4): who sees whom, keyset pages, and an erasure
that leaves no personal data in the database file while ``audit verify`` still passes."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from ostiary.cli.main import app
from ostiary.context import AppContext
from ostiary.db import Base, transaction
from ostiary.identity.models import User
from tests import factories as f
from tests.conftest import SmtpSink, link_token
from tests.test_console_tenancy import sign_in, subaccount_with

PASSWORD = "correct horse battery staple"
EMAIL = "Quentina.Zabriskie@corp.local"
GIVEN, FAMILY = "Quentina", "Zabriskie"


def cli(ctx: AppContext, tmp_path: Path, *args: str, code: int = 0) -> str:
    env = {
        "OSTIARY_DATABASE_URL": ctx.settings.resolved_database_url,
        "OSTIARY_DATA_DIR": str(tmp_path / "cli"),
        "OSTIARY_SECRET_KEY": ctx.settings.secret_key or "",
        "OSTIARY_SMTP_URL": "",
    }
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.output


def registered(client: TestClient, smtp: SmtpSink) -> str:
    """A person registered and activated through the API; returns the user ID."""
    answer = client.post(
        "/api/v1/registrations",
        json={"email": EMAIL, "given_name": GIVEN, "family_name": FAMILY, "password": PASSWORD},
    )
    assert answer.status_code == 202
    token = link_token(smtp.wait_for(EMAIL, subject="Activate"))
    user_id: str = client.post("/api/v1/activations", json={"token": token}).json()["user_id"]
    return user_id


def all_rows_text(ctx: AppContext) -> str:
    """Every value of every table, as text (both backends)."""
    parts = []
    with transaction(ctx.read_sessions) as session:
        for table in Base.metadata.sorted_tables:
            parts.extend(repr(tuple(row)) for row in session.execute(select(table)))
    return "\n".join(parts).lower()


def test_platform_admins_search_everyone_page_by_page(client: TestClient, ctx: AppContext) -> None:
    admin = f.admin(ctx)
    people = [f.person(ctx, given_name="Search", family_name=f"Hit{n}") for n in range(5)]
    owner = people[0]
    f.technical_user(ctx, owner=owner, display_name="Search bot")
    auth = f.basic(admin.user_id)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"query": "search", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/users", params=params, headers=auth).json()
        seen.extend(u["user_id"] for u in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and seen == sorted(seen)
    only = client.get("/api/v1/users", params={"kind": "technical"}, headers=auth).json()
    assert [u["kind"] for u in only["items"]] == ["technical"]
    wildcard = client.get("/api/v1/users", params={"query": "%"}, headers=auth).json()
    assert wildcard["items"] == []


def test_administrators_see_their_members_and_others_may_not_list(
    client: TestClient, ctx: AppContext
) -> None:
    boss, member, stranger = f.person(ctx), f.person(ctx), f.person(ctx)
    subaccount_with(client, ctx, **{boss.user_id: "Administrator", member.user_id: "Viewer"})
    page = client.get("/api/v1/users", headers=f.basic(boss.user_id)).json()
    seen = {u["user_id"] for u in page["items"]}
    # The members of acme-test: boss, member and the platform admin who created it.
    assert {boss.user_id, member.user_id} <= seen and stranger.user_id not in seen
    assert len(seen) == 3
    refused = client.get("/api/v1/users", headers=f.basic(member.user_id))
    assert refused.status_code == 403
    assert client.get("/api/v1/users", headers=f.basic(stranger.user_id)).status_code == 403


def test_erasure_is_refused_with_the_list_while_the_person_solely_owns_technical_users(
    client: TestClient, ctx: AppContext
) -> None:
    admin, person = f.admin(ctx), f.person(ctx)
    bots = sorted(f.technical_user(ctx, owner=person)[0].user_id for _ in range(2))
    auth = f.basic(admin.user_id)
    refused = client.delete(f"/api/v1/users/{person.user_id}", headers=auth)
    assert refused.status_code == 409
    assert refused.json()["error"] == "sole_owner"
    assert refused.json()["technical_users"] == bots
    assert client.get(f"/api/v1/users/{person.user_id}", headers=auth).json()["email"]
    for bot in bots:
        moved = client.put(
            f"/api/v1/technical-users/{bot}/owner",
            headers=auth,
            json={"owner_user_id": admin.user_id},
        )
        assert moved.status_code == 200, moved.text
    assert client.delete(f"/api/v1/users/{person.user_id}", headers=auth).status_code == 200


def test_erasure_leaves_no_personal_data_in_the_database_and_the_audit_verifies(
    client: TestClient, ctx: AppContext, smtp: SmtpSink, tmp_path: Path
) -> None:
    admin = f.admin(ctx)
    user_id = registered(client, smtp)
    with transaction(ctx.read_sessions) as session:
        sign_in(client, session.scalar(select(User).where(User.user_id == user_id)), PASSWORD)
    owner_auth = subaccount_with(client, ctx)
    added = client.post(
        "/api/v1/subaccounts/acme-test/members",
        headers=owner_auth,
        json={"user_id": user_id, "roles": ["Developer"], "description": f"on call: {EMAIL}"},
    )
    assert added.status_code == 201, added.text
    client.post("/api/v1/password-resets", json={"email": EMAIL})  # another mail naming the person
    client.cookies.clear()
    wrong = client.get("/api/v1/me", headers=f.basic(EMAIL.lower(), "not the password"))
    assert wrong.status_code == 401
    assert GIVEN.lower() in all_rows_text(ctx) and EMAIL.lower() in all_rows_text(ctx)

    erased = client.delete(f"/api/v1/users/{user_id}", headers=f.basic(admin.user_id))
    assert erased.status_code == 200, erased.text
    assert erased.json()["status"] == "erased"

    text = all_rows_text(ctx)
    for needle in (EMAIL.lower(), GIVEN.lower(), FAMILY.lower()):
        assert needle not in text
    assert f"[erased {user_id}]".lower() in text
    if ctx.engine.dialect.name == "sqlite":
        database = Path(ctx.settings.resolved_database_url.removeprefix("sqlite:///"))
        for path in (database, Path(f"{database}-wal")):
            data = path.read_bytes().lower() if path.exists() else b""
            for needle in (EMAIL, GIVEN, FAMILY):
                assert needle.lower().encode() not in data, f"{needle} left in {path.name}"
    assert "intact" in cli(ctx, tmp_path, "audit", "verify")
    # The user ID stays; the account is gone for good.
    with transaction(ctx.read_sessions) as session:
        kept = session.scalar(select(User).where(User.user_id == user_id))
        assert kept is not None and kept.email is None and kept.password_hash is None
    assert client.get("/api/v1/me", headers=f.basic(user_id, PASSWORD)).status_code == 401
    back = client.patch(
        f"/api/v1/users/{user_id}", headers=f.basic(admin.user_id), json={"status": "active"}
    )
    assert back.status_code == 400


def test_cli_lists_users_and_erases_a_person(
    ctx: AppContext, tmp_path: Path, client: TestClient
) -> None:
    admin = f.admin(ctx)
    person = f.person(ctx, email="ops@example.test", given_name="Olive", family_name="Oyl")
    bot, _ = f.technical_user(ctx, owner=person)
    listed = cli(ctx, tmp_path, "user", "list", "--query", "olive", "--json")
    assert person.user_id in listed and "ops@example.test" in listed
    refused = cli(ctx, tmp_path, "user", "delete", person.user_id, "--as", admin.user_id, code=1)
    assert bot.user_id in refused
    cli(ctx, tmp_path, "technical-user", "transfer", bot.user_id, "--owner", admin.user_id,
        "--as", admin.user_id)  # fmt: skip
    done = cli(ctx, tmp_path, "user", "delete", person.user_id, "--as", admin.user_id, "--json")
    assert '"status": "erased"' in done
    assert "ops@example.test" not in cli(ctx, tmp_path, "user", "list", "--json")
