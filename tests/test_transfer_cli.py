"""``ostiary subaccount export|import`` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ostiary.cli.main import app
from ostiary.context import AppContext
from tests.transfer_world import World, build

Run = Callable[..., str]


@pytest.fixture
def run(ctx: AppContext, tmp_path: Path) -> Run:
    runner = CliRunner()
    env = {
        "OSTIARY_DATABASE_URL": ctx.settings.resolved_database_url,
        "OSTIARY_DATA_DIR": str(tmp_path / "cli"),
        "OSTIARY_SECRET_KEY": ctx.settings.secret_key or "",
        "OSTIARY_SMTP_URL": "",
        "COLUMNS": "200",
    }

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    return invoke


@pytest.fixture
def world(client: TestClient, ctx: AppContext) -> World:
    return build(client, ctx)


def test_export_to_stdout_dry_run_table_import_and_an_empty_second_diff(
    world: World, run: Run, tmp_path: Path
) -> None:
    exported = run("subaccount", "export", "acme-test")
    assert json.loads(exported)["format"] == "ostiary.subaccount/1"
    assert world.secret not in exported and world.client_secret not in exported
    file = tmp_path / "acme.json"
    file.write_text(exported)

    table = run("subaccount", "import", str(file), "--subdomain", "acme-prod", "--dry-run")
    assert "Dry run" in table and "orders/v1" in table and "create" in table
    assert "nothing was changed" in table
    assert world.client.get("/api/v1/subaccounts/acme-prod", headers=world.auth).status_code == 404

    done = json.loads(run("subaccount", "import", str(file), "--subdomain", "acme-prod", "--json"))
    assert done["dry_run"] is False and done["counts"]["create"] == len(done["changes"])
    again = json.loads(run("subaccount", "import", str(file), "--subdomain", "acme-prod", "--json"))
    assert again["counts"] == {"create": 0, "update": 0, "unchanged": len(again["changes"])}

    out = tmp_path / "prod.json"
    run("subaccount", "export", "acme-prod", "--out", str(out))
    prod = json.loads(out.read_text())
    assert prod["flows"] == json.loads(exported)["flows"]
    events = world.client.get(
        "/api/v1/audit-events", headers=world.auth, params={"subdomain": "acme-prod"}
    ).json()["items"]
    assert events and {e["actor"] for e in events} == {"cli"}


def test_a_bad_file_exits_1_with_the_reason_and_changes_nothing(
    world: World, run: Run, tmp_path: Path
) -> None:
    file = tmp_path / "bad.json"
    file.write_text(json.dumps({"format": "ostiary.subaccount/9", "settings": {}}))
    output = run("subaccount", "import", str(file), "--subdomain", "acme-prod", code=1)
    assert "invalid_document" in output and "unsupported version" in output
    missing = run("subaccount", "import", str(tmp_path / "nope.json"), "--subdomain", "x", code=1)
    assert "cannot read" in missing
    assert "no sub-account" in run("subaccount", "export", "acme-none", code=1)
