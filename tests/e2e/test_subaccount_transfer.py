"""Issue 13's second *Done when*: a real server, ``acme-test`` exported with the CLI and
imported as ``acme-prod``; a technical user assigned in the import calls the imported flow
there, and one left unassigned is refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server, ostiary_command
from tests.factories import basic

pytestmark = pytest.mark.e2e

ROOT = basic(ADMIN_EMAIL, ADMIN_PASSWORD)


def _cli(server: Server, *args: str) -> str:
    done = subprocess.run(
        [*ostiary_command(), *args],
        env={**server.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _made(api: httpx.Client, method: str, url: str, body: dict[str, Any]) -> Any:
    answer = api.request(method, url, headers=ROOT, json=body)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def test_acme_test_exported_by_cli_and_imported_as_acme_prod_admits_the_assigned_sender(
    server: Server, tmp_path: Path
) -> None:
    sd = "/api/v1/subaccounts/acme-test"
    with server.client() as api:
        _made(api, "POST", "/api/v1/subaccounts", {"subdomain": "acme-test", "display_name": "T"})
        _made(api, "POST", f"{sd}/roles", {"name": "Orders.send"})
        _made(api, "POST", f"{sd}/role-collections", {"name": "Senders", "roles": ["Orders.send"]})
        _made(
            api,
            "POST",
            f"{sd}/flows",
            {"path": "orders/v1", "required_role": "Orders.send", "auth": ["basic"]},
        )
        sender = _made(
            api, "POST", "/api/v1/technical-users", {"display_name": "S", "subdomain": "acme-test"}
        )
        idle = _made(
            api, "POST", "/api/v1/technical-users", {"display_name": "I", "subdomain": "acme-test"}
        )
        user = sender["user_id"]
        _made(api, "PUT", f"{sd}/users/{user}/role-collections", {"role_collections": ["Senders"]})
        assert api.post(
            "/t/acme-test/http/orders/v1", headers=basic(user, sender["password"]), content=b"1"
        ).is_success

        exported = _cli(server, "subaccount", "export", "acme-test")
        assert sender["password"] not in exported and idle["password"] not in exported
        file = tmp_path / "acme.json"
        file.write_text(exported)
        dry = json.loads(
            _cli(
                server,
                "subaccount",
                "import",
                str(file),
                "--subdomain",
                "acme-prod",
                "--dry-run",
                "--json",
            )
        )
        assert dry["dry_run"] and {c["action"] for c in dry["changes"]} == {"create"}
        assert api.get("/api/v1/subaccounts/acme-prod", headers=ROOT).status_code == 404
        table = _cli(server, "subaccount", "import", str(file), "--subdomain", "acme-prod")
        assert "orders/v1" in table and "create" in table

        call = api.post(
            "/t/acme-prod/http/orders/v1", headers=basic(user, sender["password"]), content=b"<o/>"
        )
        assert call.status_code == 200, call.text
        refused = api.post(
            "/t/acme-prod/http/orders/v1",
            headers=basic(idle["user_id"], idle["password"]),
            content=b"x",
        )
        assert refused.status_code == 403, refused.text

        again = api.post(
            "/api/v1/subaccounts/acme-prod/import",
            headers={**ROOT, "Content-Type": "application/json"},
            content=file.read_bytes(),
        )
        assert again.status_code == 200, again.text
        assert again.json()["counts"]["create"] == again.json()["counts"]["update"] == 0
        exported_prod = api.get("/api/v1/subaccounts/acme-prod/export", headers=ROOT).json()
        assert exported_prod["flows"] == json.loads(exported)["flows"]
    _cli(server, "audit", "verify")  # the import's events joined the chain like any others
