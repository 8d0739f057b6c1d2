"""The runtime console pages in-process: flows guarded by member roles, the message
processing log naming sender and credential (C5), and the access explanation (C4)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ostiary.context import AppContext
from ostiary.identity.models import User
from tests import factories as f
from tests.test_console_tenancy import sign_in

API = "/api/v1/subaccounts/acme"
CONSOLE = "/console/subaccounts/acme"
PAYLOAD = b"<order id='42'/>"


class Tenant:
    """Sub-account ``acme`` with a flow ``orders/v1``, a Senders role collection and its
    Administrator, made through the API."""

    def __init__(self, client: TestClient, ctx: AppContext) -> None:
        self.client = client
        self.ctx = ctx
        self.admin = f.admin(ctx)
        self.root = f.basic(self.admin.user_id)
        self.api("post", "/api/v1/subaccounts", subdomain="acme", display_name="Acme", plan="trial")
        self.api("post", f"{API}/flows", path="orders/v1")
        self.api("post", f"{API}/role-collections", name="Senders", roles=["ESBMessaging.send"])

    def api(self, method: str, url: str, **body: Any) -> Any:
        answer = self.client.request(method, url, headers=self.root, json=body or None)
        assert answer.status_code < 300, answer.text
        return answer.json() if answer.content else None

    def member(self, role: str) -> User:
        person = f.person(self.ctx)
        self.api("post", f"{API}/members", user_id=person.user_id, roles=[role])
        return person

    def sender(self, *, assigned: bool = True) -> tuple[str, str]:
        made = self.api("post", "/api/v1/technical-users", subdomain="acme", display_name="ERP")
        if assigned:
            self.api(
                "put",
                f"{API}/users/{made['user_id']}/role-collections",
                role_collections=["Senders"],
            )
        return made["user_id"], made["password"]

    def send(self, user_id: str, password: str) -> str:
        answer = self.client.post(
            "/t/acme/http/orders/v1",
            content=PAYLOAD,
            headers={**f.basic(user_id, password), "Content-Type": "application/xml"},
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["message_id"])


@pytest.fixture
def tenant(client: TestClient, ctx: AppContext) -> Tenant:
    return Tenant(client, ctx)


FLOW_FORM = {
    "path": "invoices/v2",
    "required_role": "ESBMessaging.send",
    "auth": ["basic"],
    "mode": "store",
    "receiver_url": "",
    "timeout_seconds": "20",
    "max_mib": "2",
    "description": "invoices from the ERP",
}


def test_developer_creates_changes_and_disables_a_flow(tenant: Tenant) -> None:
    token = sign_in(tenant.client, tenant.member("Developer"))
    page = tenant.client.get(f"{CONSOLE}/flows")
    assert page.status_code == 200
    assert "New flow" in page.text and "<code>/t/acme/http/orders/v1</code>" in page.text

    created = tenant.client.post(f"{CONSOLE}/flows", data={"csrf_token": token, **FLOW_FORM})
    assert created.status_code == 200, created.text
    assert created.url.path == f"{CONSOLE}/flows/invoices/v2"
    assert "The flow was created" in created.text
    assert "http://testserver/t/acme/http/invoices/v2" in created.text
    flow = tenant.api("get", f"{API}/flows/invoices/v2")
    assert flow["max_bytes"] == 2 * 1024 * 1024 and flow["timeout_seconds"] == 20
    assert flow["description"] == "invoices from the ERP"

    again = tenant.client.post(f"{CONSOLE}/flows", data={"csrf_token": token, **FLOW_FORM})
    assert again.status_code == 409 and "already exists" in again.text
    assert 'value="invoices from the ERP"' in again.text  # the form keeps what was typed

    saved = tenant.client.post(
        f"{CONSOLE}/flows/invoices/v2",
        data={"csrf_token": token, **FLOW_FORM, "action": "save", "timeout_seconds": "5"},
    )
    assert saved.status_code == 200 and "The flow was saved" in saved.text
    disabled = tenant.client.post(
        f"{CONSOLE}/flows/invoices/v2", data={"csrf_token": token, "action": "disable"}
    )
    assert "The flow is disabled" in disabled.text
    flow = tenant.api("get", f"{API}/flows/invoices/v2")
    assert flow["timeout_seconds"] == 5 and flow["enabled"] is False

    bad = tenant.client.post(
        f"{CONSOLE}/flows/invoices/v2",
        data={"csrf_token": token, **FLOW_FORM, "action": "save", "auth": []},
    )
    assert bad.status_code == 400 and "at least one" in bad.text
    huge = tenant.client.post(
        f"{CONSOLE}/flows/invoices/v2",
        data={"csrf_token": token, **FLOW_FORM, "action": "save", "max_mib": "1e999"},
    )
    assert huge.status_code == 400 and "must be a number" in huge.text
    deleted = tenant.client.post(
        f"{CONSOLE}/flows/invoices/v2", data={"csrf_token": token, "action": "delete"}
    )
    assert deleted.url.path == f"{CONSOLE}/flows" and "invoices/v2" not in deleted.text
    assert tenant.client.get(f"{CONSOLE}/flows/invoices/v2").status_code == 404


def test_viewer_sees_the_flows_but_gets_403_creating_one(tenant: Tenant) -> None:
    token = sign_in(tenant.client, tenant.member("Viewer"))
    page = tenant.client.get(f"{CONSOLE}/flows")
    assert page.status_code == 200
    assert "orders/v1" in page.text and "New flow" not in page.text
    detail = tenant.client.get(f"{CONSOLE}/flows/orders/v1")
    assert detail.status_code == 200 and "Delete flow" not in detail.text

    refused = tenant.client.post(f"{CONSOLE}/flows", data={"csrf_token": token, **FLOW_FORM})
    assert refused.status_code == 403
    assert "Access denied" in refused.text and "subaccount:flows:write" in refused.text
    toggled = tenant.client.post(
        f"{CONSOLE}/flows/orders/v1", data={"csrf_token": token, "action": "disable"}
    )
    assert toggled.status_code == 403
    flows = tenant.api("get", f"{API}/flows")["items"]
    assert [(f["path"], f["enabled"]) for f in flows] == [("orders/v1", True)]


def test_messages_page_names_sender_and_credential_and_filters_by_sender(
    tenant: Tenant,
) -> None:
    first, first_secret = tenant.sender()
    second, second_secret = tenant.sender()
    first_id = tenant.send(first, first_secret)
    tenant.send(second, second_secret)
    credential = {
        m["sender"]: m["credential_id"] for m in tenant.api("get", f"{API}/messages")["items"]
    }
    sign_in(tenant.client, tenant.admin)

    page = tenant.client.get(f"{CONSOLE}/messages")
    assert page.status_code == 200
    for user_id in (first, second):
        assert f'<code class="sender">{user_id}</code>' in page.text
        assert credential[user_id] in page.text

    mine = tenant.client.get(f"{CONSOLE}/messages", params={"sender": first})
    assert credential[first] in mine.text and first_id in mine.text
    assert second not in mine.text and credential[second] not in mine.text
    failed = tenant.client.get(f"{CONSOLE}/messages", params={"status": "failed"})
    assert 'class="sender"' not in failed.text and "No messages match" in failed.text

    entry = tenant.client.get(f"{CONSOLE}/messages/{first_id}")
    assert entry.status_code == 200 and credential[first] in entry.text
    link = re.search(r'<a href="([^"]+)" download id="payload-link">', entry.text)
    assert link, "no Download payload link"
    payload = tenant.client.get(link.group(1))
    assert payload.status_code == 200 and payload.content == PAYLOAD

    # The per-technical-user view (C5): the inventory and the user's page link to it.
    sender_link = f'href="{CONSOLE}/messages?sender={first}"'
    assert sender_link in tenant.client.get(f"{CONSOLE}/technical-users").text
    assert sender_link in tenant.client.get(f"/console/technical-users/{first}").text

    garbled = tenant.client.get(f"{CONSOLE}/messages", params={"since": "yesterday"})
    assert garbled.status_code == 400 and "date and time" in garbled.text
    assert tenant.client.get(f"{CONSOLE}/messages/no-such-id").status_code == 404


def test_messages_page_pages_through_the_log_with_the_cursor(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ostiary.console import message_views

    monkeypatch.setattr(message_views, "PAGE_SIZE", 2)
    user_id, secret = tenant.sender()
    sent = [tenant.send(user_id, secret) for _ in range(3)]
    sign_in(tenant.client, tenant.admin)

    first = tenant.client.get(f"{CONSOLE}/messages", params={"sender": user_id})
    more = re.search(r'<a href="\?([^"]+)" rel="next">Next page</a>', first.text)
    assert more, "no Next page link"
    second = tenant.client.get(f"{CONSOLE}/messages?{more.group(1).replace('&amp;', '&')}")
    assert second.status_code == 200
    seen = [m for m in sent if m in first.text] + [m for m in sent if m in second.text]
    assert sorted(seen) == sorted(sent)
    assert "Next page" not in second.text


def test_flow_page_explains_the_missing_link_for_an_unassigned_user(tenant: Tenant) -> None:
    stranger, _ = tenant.sender(assigned=False)
    allowed, _ = tenant.sender()
    sign_in(tenant.client, tenant.admin)

    denied = tenant.client.get(f"{CONSOLE}/flows/orders/v1", params={"user_id": stranger})
    assert denied.status_code == 200
    assert "Denied" in denied.text
    missing = re.search(r'<li class="missing-link" id="missing-link">(.*?)</li>', denied.text)
    assert missing, "the missing link is not highlighted"
    assert f"user {stranger} holds no role collection in acme" in missing.group(1)
    assert "flow orders/v1 requires role ESBMessaging.send" in denied.text

    granted = tenant.client.get(f"{CONSOLE}/flows/orders/v1", params={"user_id": allowed})
    assert "Allowed" in granted.text and 'id="missing-link"' not in granted.text

    # The same button on the technical user's page.
    page = tenant.client.get(f"/console/technical-users/{stranger}")
    assert f'action="/console/technical-users/{stranger}/explain"' in page.text
    explained = tenant.client.get(
        f"/console/technical-users/{stranger}/explain",
        params={"subdomain": "acme", "flow": "orders/v1"},
    )
    assert explained.status_code == 200
    assert f"user {stranger} holds no role collection in acme" in explained.text
