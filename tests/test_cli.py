"""The CLI drives the same services as the API, with JSON output for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ostiary.cli.main import app
from ostiary.context import AppContext
from tests import factories as f


@pytest.fixture
def cli(ctx: AppContext, tmp_path: Path) -> object:
    runner = CliRunner()
    env = {
        "OSTIARY_DATABASE_URL": ctx.settings.resolved_database_url,
        "OSTIARY_DATA_DIR": str(tmp_path / "cli"),
        "OSTIARY_SECRET_KEY": ctx.settings.secret_key or "",
        "OSTIARY_SMTP_URL": "",
    }

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_cli_walks_the_seed_model_and_explains_access(cli: object, ctx: AppContext) -> None:
    run = cli  # type: ignore[assignment]
    owner = f.person(ctx)
    run("subaccount", "create", "acme-cli", "--name", "Acme CLI", "--admin", owner.user_id)
    made = json.loads(
        run(
            "technical-user",
            "create",
            "--name",
            "orders",
            "--owner",
            owner.user_id,
            "--subaccount",
            "acme-cli",
            "--json",
        )
    )
    tu = made[0]["user_id"]
    assert len(made[0]["password"]) >= 43
    run("member", "add", "acme-cli", tu, "--role", "Viewer", "--description", "bot")
    run("role-collection", "create", "acme-cli", "Senders", "--role", "ESBMessaging.send")
    run("flow", "create", "acme-cli", "orders")
    assigned = json.loads(run("assign", "set", "acme-cli", tu, "Senders", "--json"))
    assert assigned == [{"user_id": tu, "role_collections": ["Senders"]}]
    assert "allow" in run("access", "explain", "acme-cli", "--user", tu, "--flow", "orders")
    run("assign", "set", "acme-cli", tu)
    denied = run("access", "explain", "acme-cli", "--user", tu, "--flow", "orders", code=1)
    assert "missing link" in denied and "holds no role collection" in denied
    inventory = json.loads(run("technical-user", "list", "acme-cli", "--json"))
    assert [r["user_id"] for r in inventory] == [tu] and inventory[0]["owner"] == owner.user_id
    members = json.loads(run("member", "list", "acme-cli", "--json"))
    assert {m["user_id"] for m in members} == {owner.user_id, tu}
    assert "intact" in run("audit", "verify")


def test_cli_reports_domain_errors_with_exit_code_1(cli: object) -> None:
    run = cli  # type: ignore[assignment]
    out = run("member", "add", "nowhere", "P999999", "--role", "Viewer", code=1)
    assert "not_found" in out
    out = run("subaccount", "create", "Bad_Name", "--name", "x", code=1)
    assert "subdomain" in out


def test_cli_changes_the_password_policy(cli: object) -> None:
    run = cli  # type: ignore[assignment]
    run("policy", "set", "person", "--no-expiry", "--min-length", "12")
    shown = json.loads(run("policy", "show", "--json"))
    person = next(p for p in shown if p["kind"] == "person")
    assert person["expiry_days"] is None and person["min_length"] == 12
    assert "between 8 and 256" in run("policy", "set", "person", "--min-length", "3", code=1)


def test_cli_oauth_clients_keys_and_outbox(cli: object, ctx: AppContext) -> None:
    run = cli  # type: ignore[assignment]
    owner = f.person(ctx)
    run("subaccount", "create", "acme-oauth", "--name", "O", "--admin", owner.user_id)
    tu = json.loads(
        run("technical-user", "create", "--name", "bot", "--owner", owner.user_id, "--json")
    )[0]["user_id"]
    made = json.loads(run("oauth-client", "create", "acme-oauth", "--user", tu, "--json"))[0]
    assert made["client_id"].startswith("oc-") and len(made["client_secret"]) >= 43
    rotated = json.loads(
        run(
            "oauth-client",
            "rotate",
            "acme-oauth",
            made["client_id"],
            "--overlap-hours",
            "1",
            "--json",
        )
    )[0]
    assert rotated["client_secret"] != made["client_secret"]
    listed = json.loads(run("oauth-client", "list", "acme-oauth", "--json"))
    assert [len(c["secrets"]) for c in listed] == [2]
    assert all("(active)" in s for s in listed[0]["secrets"])  # overlap: both still work
    before = json.loads(run("keys", "list", "--json"))
    run("keys", "rotate", "--grace-minutes", "5")
    after = json.loads(run("keys", "list", "--json"))
    assert len(after) == len(before) + 1 and all(k["published"] for k in after)
    with ctx.sessions() as session, session.begin():
        from ostiary.mail.service import enqueue

        enqueue(
            session, clock=ctx.clock, recipient="x@example.com", subject="Hello", body="the body"
        )
    mails = json.loads(run("outbox", "--json"))
    assert mails[0]["subject"] == "Hello" and mails[0]["body"] == "the body"


def test_scim_token_create_list_revoke(cli: object, ctx: AppContext) -> None:
    run = cli  # type: ignore[assignment]
    made = json.loads(run("scim-token", "create", "--description", "Okta", "--json"))[0]
    assert made["token"].startswith("ostscim_")
    listed = run("scim-token", "list", "--json")
    assert made["token"] not in listed
    rows = json.loads(listed)
    assert [(r["token_id"], r["status"], r["description"]) for r in rows] == [
        (made["token_id"], "active", "Okta")
    ]
    revoked = json.loads(run("scim-token", "revoke", made["token_id"], "--json"))[0]
    assert revoked["status"] == "revoked"
    run("scim-token", "revoke", "scim-nope", code=1)


def test_a_failed_upgrade_is_a_message_and_exit_code_1_not_a_traceback(
    cli: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ostiary.migrate

    def refuse(*args: object, **kwargs: object) -> None:
        raise ostiary.migrate.MigrationFailed("2 rows in members lost their parent")

    monkeypatch.setattr(ostiary.migrate, "upgrade", refuse)
    run = cli  # type: ignore[assignment]
    out = run("db", "upgrade", code=1)
    assert "upgrade failed" in out and "2 rows in members lost their parent" in out
    assert "Traceback" not in out
