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
