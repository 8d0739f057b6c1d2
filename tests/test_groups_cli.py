"""``ostiary group …`` and ``ostiary invite …`` drive the same services as the API (issue 12)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ostiary.cli.main import app
from ostiary.context import AppContext
from tests import factories as f
from tests.conftest import SmtpSink, link_token

Run = Callable[..., str]


@pytest.fixture
def cli(ctx: AppContext, tmp_path: Path, smtp: SmtpSink) -> Run:
    runner = CliRunner()
    env = {
        "OSTIARY_DATABASE_URL": ctx.settings.resolved_database_url,
        "OSTIARY_DATA_DIR": str(tmp_path / "cli"),
        "OSTIARY_SECRET_KEY": ctx.settings.secret_key or "",
        "OSTIARY_SMTP_URL": smtp.url,
        "OSTIARY_PUBLIC_URL": "http://testserver",
    }

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_cli_groups_give_a_technical_user_its_role_through_the_group(
    cli: Run, ctx: AppContext
) -> None:
    owner = f.person(ctx)
    bot, _ = f.technical_user(ctx, owner=owner)
    cli("subaccount", "create", "acme-cli", "--name", "Acme", "--admin", owner.user_id)
    cli("role-collection", "create", "acme-cli", "Senders", "--role", "ESBMessaging.send")
    cli("flow", "create", "acme-cli", "orders")
    made = json.loads(cli("group", "create", "Integration Team", "--json"))
    group_id = made[0]["group_id"]
    cli("group", "add-member", "Integration Team", bot.user_id)
    cli("group", "add-member", group_id, owner.user_id)
    assigned = json.loads(
        cli("group", "assign", group_id, "Senders", "--subaccount", "acme-cli", "--json")
    )
    assert assigned == [{"group_id": group_id, "role_collections": ["Senders"]}]
    explained = cli("access", "explain", "acme-cli", "--user", bot.user_id, "--flow", "orders")
    assert "group Integration Team" in explained
    listed = json.loads(cli("group", "list", "--json"))
    assert listed[0]["members"] == sorted([bot.user_id, owner.user_id])
    cli("group", "own", bot.user_id, group_id, "--as", owner.user_id)
    assert "owned technical user" in cli("group", "show", group_id)
    assert "owns" in cli("group", "delete", group_id, code=1)
    cli("group", "remove-member", group_id, bot.user_id)
    cli("group", "remove-member", group_id, bot.user_id, code=1)
    cli("access", "explain", "acme-cli", "--user", bot.user_id, "--flow", "orders", code=1)


def test_cli_invitations_are_mailed_listed_and_withdrawn(
    cli: Run, ctx: AppContext, smtp: SmtpSink
) -> None:
    admin = f.person(ctx)
    cli("subaccount", "create", "acme-inv", "--name", "Acme", "--admin", admin.user_id)
    sent = json.loads(
        cli(
            "invite",
            "send",
            "acme-inv",
            "someone@example.test",
            "--as",
            admin.user_id,
            "--role",
            "Developer",
            "--json",
        )
    )
    assert sent[0]["roles"] == ["Developer"]
    assert link_token(smtp.wait_for("someone@example.test", subject="invited"))
    pending = json.loads(cli("invite", "list", "acme-inv", "--json"))
    assert [p["email"] for p in pending] == ["someone@example.test"]
    cli("invite", "withdraw", "acme-inv", sent[0]["invitation_id"], "--as", admin.user_id)
    assert json.loads(cli("invite", "list", "acme-inv", "--json")) == []
    cli(
        "invite",
        "send",
        "acme-inv",
        "bad address",
        "--as",
        admin.user_id,
        "--role",
        "Viewer",
        code=1,
    )
