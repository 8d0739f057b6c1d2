"""A realistic sub-account for the export/import tests, built through the admin API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from ostiary.context import AppContext
from ostiary.identity.models import User
from tests import factories as f
from tests.pki import make, name

API = "/api/v1"


@dataclass
class World:
    """``acme-test`` with a custom role, a collection, a flow, a trusted CA with a mapping
    rule, members, a technical user with a secret and an OAuth client, and a group."""

    client: TestClient
    ctx: AppContext
    root: User
    bot: str
    secret: str
    client_secret: str
    dev: User
    group_id: str

    @property
    def auth(self) -> dict[str, str]:
        """The platform administrator's Basic header."""
        return f.basic(self.root.user_id)

    def export(self, subdomain: str = "acme-test", auth: dict[str, str] | None = None) -> Any:
        """The export of ``subdomain`` (asserting 200)."""
        answer = self.client.get(f"{API}/subaccounts/{subdomain}/export", headers=auth or self.auth)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def import_(
        self,
        document: Any,
        subdomain: str = "acme-prod",
        *,
        dry_run: bool = False,
        auth: dict[str, str] | None = None,
        status: int = 200,
    ) -> Any:
        """Import ``document`` into ``subdomain`` (asserting ``status``)."""
        answer = self.client.post(
            f"{API}/subaccounts/{subdomain}/import",
            headers=auth or self.auth,
            params={"dry_run": "true"} if dry_run else None,
            json=document,
        )
        assert answer.status_code == status, answer.text
        return answer.json()


def build(client: TestClient, ctx: AppContext) -> World:
    """Make ``acme-test`` through the API, as an operator would by hand."""
    root = f.admin(ctx)
    auth = f.basic(root.user_id)
    sd = f"{API}/subaccounts/acme-test"

    def post(url: str, body: dict[str, Any], method: str = "POST") -> Any:
        answer = client.request(method, url, headers=auth, json=body)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    post(f"{API}/subaccounts", {"subdomain": "acme-test", "display_name": "Acme Test"})
    post(sd, {"basic_auth_allowed": True, "message_retention_days": 14}, "PATCH")
    post(f"{sd}/roles", {"name": "Orders.send", "description": "send orders"})
    post(
        f"{sd}/role-collections",
        {"name": "Order Senders", "roles": ["Orders.send", "ESBMessaging.send"]},
    )
    post(f"{sd}/role-collections", {"name": "Readers", "roles": ["AuthGroup.ReadOnly"]})
    post(
        f"{sd}/flows",
        {"path": "orders/v1", "required_role": "Orders.send", "auth": ["basic", "oauth"]},
    )
    made = post(
        f"{API}/technical-users", {"display_name": "Order sender", "subdomain": "acme-test"}
    )
    bot, secret = made["user_id"], made["password"]
    post(f"{sd}/users/{bot}/role-collections", {"role_collections": ["Order Senders"]}, "PUT")
    dev = f.person(ctx)
    post(f"{sd}/members", {"user_id": dev.user_id, "roles": ["Developer"], "description": "dev"})
    oauth = post(f"{sd}/oauth-clients", {"user_id": bot, "description": "orders"})
    root_ca = make(name("Partner Root"), ca=True, days=3650)
    tca = post(f"{sd}/trusted-cas", {"certificate_pem": root_ca.pem, "description": "partner"})
    post(
        f"{sd}/trusted-cas/{tca['trusted_ca_id']}/mapping-rules",
        {"subject_dn": "CN=orders,O=Partner", "user_id": bot},
    )
    group_id = post(f"{API}/groups", {"name": "Integration Team"})["group_id"]
    post(f"{sd}/groups/{group_id}/role-collections", {"role_collections": ["Readers"]}, "PUT")
    assert client.get(f"{sd}/ca", headers=auth).status_code == 200  # its CA (a private key)
    return World(client, ctx, root, bot, secret, oauth["client_secret"], dev, group_id)
