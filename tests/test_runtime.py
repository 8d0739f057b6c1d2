"""The runtime endpoint: contract §2 step 9 and C4, every denial audited and explained."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ostiary.access.service import set_user_collections
from ostiary.audit import chain as audit_chain
from ostiary.context import AppContext
from ostiary.db import make_session_factory, transaction
from ostiary.gate.recheck import Recheck
from ostiary.identity import technical
from ostiary.identity.models import User
from ostiary.runtime.service import new_message_id
from ostiary.runtime.usage import LastUse
from ostiary.tenancy.models import Subaccount
from tests import factories as f

API = "/api/v1/subaccounts"
PAYLOAD = b"<order id='42'/>"


class Tenant:
    """Two sub-accounts, a flow, a role collection and a technical user that may send."""

    def __init__(self, client: TestClient, ctx: AppContext) -> None:
        self.client = client
        self.ctx = ctx
        self.root = f.basic(f.admin(ctx).user_id)
        for sd in ("acme", "other"):
            assert (
                client.post(
                    API,
                    headers=self.root,
                    json={"subdomain": sd, "display_name": sd, "plan": "standard"},
                ).status_code
                == 201
            )
            assert (
                client.post(
                    f"{API}/{sd}/flows", headers=self.root, json={"path": "orders/v1"}
                ).status_code
                == 201
            )
            assert (
                client.post(
                    f"{API}/{sd}/role-collections",
                    headers=self.root,
                    json={"name": "Senders", "roles": ["ESBMessaging.send"]},
                ).status_code
                == 201
            )
        self.sender, self.secret = self.technical_user("acme")

    def technical_user(self, assign_in: str | None) -> tuple[str, str]:
        made = self.client.post(
            "/api/v1/technical-users", headers=self.root, json={"display_name": "bot"}
        ).json()
        if assign_in:
            self.assign(assign_in, made["user_id"], ["Senders"])
        return made["user_id"], made["password"]

    def assign(self, sd: str, user_id: str, collections: list[str]) -> None:
        answer = self.client.put(
            f"{API}/{sd}/users/{user_id}/role-collections",
            headers=self.root,
            json={"role_collections": collections},
        )
        assert answer.status_code == 200, answer.text

    def send(
        self,
        user: str,
        password: str,
        sd: str = "acme",
        path: str = "orders/v1",
        body: bytes = PAYLOAD,
        **headers: str,
    ) -> Any:
        return self.client.post(
            f"/t/{sd}/http/{path}",
            content=body,
            headers={**f.basic(user, password), "Content-Type": "application/xml", **headers},
        )

    def explain(self, user_id: str, sd: str = "acme") -> dict[str, Any]:
        answer = self.client.get(
            f"{API}/{sd}/access/explain",
            headers=self.root,
            params={"user_id": user_id, "flow": "orders/v1"},
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def denial_reasons(self, user_id: str) -> list[str]:
        """Reasons of runtime denials of ``user_id`` (written in the background: poll briefly)."""
        deadline = time.monotonic() + 5
        while True:
            events = self.client.get(
                "/api/v1/audit-events",
                headers=self.root,
                params={"action": "runtime:denied", "actor": user_id},
            ).json()["items"]
            if events or time.monotonic() > deadline:
                return [e["detail"]["reason"] for e in events]
            time.sleep(0.05)


@pytest.fixture
def tenant(client: TestClient, ctx: AppContext) -> Tenant:
    return Tenant(client, ctx)


def test_assigned_technical_user_is_admitted_and_logged(tenant: Tenant) -> None:
    answer = tenant.send(tenant.sender, tenant.secret, SAP_ApplicationID="PO-42")
    assert answer.status_code == 200, answer.text
    message_id = answer.json()["message_id"]
    mpl = tenant.client.get(
        f"{API}/acme/messages", headers=tenant.root, params={"sender": tenant.sender}
    ).json()["items"]
    assert [m["message_id"] for m in mpl] == [message_id]
    entry = mpl[0]
    assert entry["auth_method"] == "basic" and entry["status"] == "stored"
    assert entry["credential_id"].startswith(f"pwd-{tenant.sender}-")
    assert entry["business_id"] == "PO-42" and entry["size"] == len(PAYLOAD)
    payload = tenant.client.get(f"{API}/acme/messages/{message_id}/payload", headers=tenant.root)
    assert payload.content == PAYLOAD and payload.headers["content-type"] == "application/xml"
    assert tenant.explain(tenant.sender)["decision"] == "allow"


def test_unknown_user_and_wrong_password_get_the_same_401(tenant: Tenant) -> None:
    unknown = tenant.send("T999999", tenant.secret)
    wrong = tenant.send(tenant.sender, "not-the-secret")
    for answer in (unknown, wrong):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Basic")
    assert unknown.content == wrong.content
    assert tenant.client.post("/t/acme/http/orders/v1", content=b"x").status_code == 401
    assert "wrong password" in tenant.denial_reasons(tenant.sender)


def test_a_refusal_is_rechecked_against_another_process_s_change(tenant: Tenant) -> None:
    """Another worker just reset a secret and assigned the role; this process has not polled
    yet, yet the first call with the new state is admitted instead of refused (and throttled)."""
    ctx = tenant.ctx
    admin = f.admin(ctx)
    user_id, old_secret = tenant.technical_user(assign_in=None)
    ctx.grants.stop()  # no polling: only the re-check before refusing can see the change
    ctx.grants.get()
    elsewhere = make_session_factory(ctx.engine)  # commits unseen by this process's snapshot
    audit_chain.attach(elsewhere, ctx.secret_key)  # another process audits under the same key
    with transaction(elsewhere) as session:
        user = session.scalars(select(User).where(User.user_id == user_id)).one()
        acme = session.scalars(select(Subaccount).where(Subaccount.subdomain == "acme")).one()
        issued = technical.reset_secret(session, ctx, actor=admin, user=user)
        set_user_collections(
            session,
            clock=ctx.clock,
            actor=admin.user_id,
            subaccount=acme,
            user=user,
            names=["Senders"],
        )
    assert tenant.send(user_id, issued.secret).status_code == 200
    assert tenant.send(user_id, old_secret).status_code == 401


def test_a_failed_recheck_leaves_the_refusal_standing(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the grants cannot be re-read, a refusal is still a counted, audited 401, never a
    500 that would tell a guesser something and escape the throttle (which, for a generated
    secret, answers the address's failures beyond its limit with 429)."""
    tenant.ctx.grants.get()

    def database_down() -> None:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(tenant.ctx.grants, "refresh", database_down)
    for _ in range(tenant.ctx.settings.auth_failures_per_address):
        assert tenant.send(tenant.sender, "wrong").status_code == 401
    assert tenant.send(tenant.sender, "wrong").status_code == 429
    assert tenant.send(tenant.sender, tenant.secret).status_code == 200
    assert "wrong password" in tenant.denial_reasons(tenant.sender)


def test_unknown_flow_is_404_only_after_authentication(tenant: Tenant) -> None:
    assert tenant.send(tenant.sender, tenant.secret, path="nope").status_code == 404
    assert tenant.send(tenant.sender, "bad", path="nope").status_code == 401
    assert tenant.send("T999999", "bad", sd="nowhere", path="nope").status_code == 401


def test_never_added_user_gets_403_and_the_explanation_names_it(tenant: Tenant) -> None:
    user, secret = tenant.technical_user(assign_in=None)
    assert tenant.send(user, secret).status_code == 403
    assert any("no role collection" in r for r in tenant.denial_reasons(user))
    assert "holds no role collection" in tenant.explain(user)["missing_link"]


def test_member_without_role_gets_403(tenant: Tenant) -> None:
    user, secret = tenant.technical_user(assign_in=None)
    tenant.client.post(
        f"{API}/acme/members", headers=tenant.root, json={"user_id": user, "roles": ["Viewer"]}
    )
    assert tenant.send(user, secret).status_code == 403
    assert tenant.explain(user)["decision"] == "deny"


def test_removed_member_loses_access_at_once(tenant: Tenant) -> None:
    tenant.client.post(
        f"{API}/acme/members",
        headers=tenant.root,
        json={"user_id": tenant.sender, "roles": ["Viewer"]},
    )
    assert tenant.send(tenant.sender, tenant.secret).status_code == 200
    tenant.client.delete(f"{API}/acme/members/{tenant.sender}", headers=tenant.root)
    assert tenant.send(tenant.sender, tenant.secret).status_code == 403
    assert "holds no role collection" in tenant.explain(tenant.sender)["missing_link"]


def test_unassigned_role_collection_is_refused_at_once(tenant: Tenant) -> None:
    assert tenant.send(tenant.sender, tenant.secret).status_code == 200
    tenant.assign("acme", tenant.sender, [])
    assert tenant.send(tenant.sender, tenant.secret).status_code == 403


def test_role_only_in_another_subaccount_gets_403(tenant: Tenant) -> None:
    user, secret = tenant.technical_user(assign_in="other")
    assert tenant.send(user, secret, sd="other").status_code == 200
    assert tenant.send(user, secret, sd="acme").status_code == 403
    assert "in acme" in tenant.denial_reasons(user)[0]
    assert "holds no role collection in acme" in tenant.explain(user)["missing_link"]


def test_collection_without_the_required_role_is_named_in_the_explanation(tenant: Tenant) -> None:
    tenant.client.post(
        f"{API}/acme/role-collections",
        headers=tenant.root,
        json={"name": "Readers", "roles": ["AuthGroup.ReadOnly"]},
    )
    tenant.assign("acme", tenant.sender, ["Readers"])
    assert tenant.send(tenant.sender, tenant.secret).status_code == 403
    assert "contains ESBMessaging.send" in tenant.explain(tenant.sender)["missing_link"]


def test_deleted_user_gets_401(tenant: Tenant) -> None:
    assert (
        tenant.client.delete(
            f"/api/v1/technical-users/{tenant.sender}", headers=tenant.root
        ).status_code
        == 204
    )
    assert tenant.send(tenant.sender, tenant.secret).status_code == 401
    assert "does not exist" in tenant.explain(tenant.sender)["missing_link"]


def test_disabled_user_gets_401(tenant: Tenant) -> None:
    tenant.client.patch(
        f"/api/v1/users/{tenant.sender}", headers=tenant.root, json={"status": "disabled"}
    )
    assert tenant.send(tenant.sender, tenant.secret).status_code == 401
    assert "user is disabled" in tenant.denial_reasons(tenant.sender)
    assert "disabled" in tenant.explain(tenant.sender)["missing_link"]


def test_reset_password_refuses_the_old_one_at_once(tenant: Tenant) -> None:
    assert tenant.send(tenant.sender, tenant.secret).status_code == 200
    new = tenant.client.post(
        f"/api/v1/technical-users/{tenant.sender}/password", headers=tenant.root
    ).json()["password"]
    assert tenant.send(tenant.sender, tenant.secret).status_code == 401
    assert tenant.send(tenant.sender, new).status_code == 200
    # The MPL names the credential as it was: the reset secret is a new credential ID.
    entries = tenant.client.get(f"{API}/acme/messages", headers=tenant.root).json()["items"]
    after, before = entries[0]["credential_id"], entries[1]["credential_id"]
    assert after.startswith(f"pwd-{tenant.sender}-") and after != before


def test_disabled_flow_gets_403(tenant: Tenant) -> None:
    tenant.client.patch(f"{API}/acme/flows/orders/v1", headers=tenant.root, json={"enabled": False})
    assert tenant.send(tenant.sender, tenant.secret).status_code == 403
    assert "flow orders/v1 is disabled" in tenant.denial_reasons(tenant.sender)
    assert "disabled" in tenant.explain(tenant.sender)["missing_link"]


def test_subaccount_forbidding_basic_gets_401(tenant: Tenant) -> None:
    tenant.client.patch(f"{API}/acme", headers=tenant.root, json={"basic_auth_allowed": False})
    answer = tenant.send(tenant.sender, tenant.secret)
    assert answer.status_code == 401
    assert "basic authentication is forbidden by the sub-account" in tenant.denial_reasons(
        tenant.sender
    )
    assert "forbids basic" in tenant.explain(tenant.sender)["missing_link"]


def test_store_unavailable_gets_503_and_nothing_is_acknowledged(tenant: Tenant) -> None:
    """While the message table cannot be written the caller gets 503 with Retry-After, not
    a 2xx that would lose the message; once it can, messages are taken again."""

    def messages() -> list[dict[str, Any]]:
        answer = tenant.client.get(f"{API}/acme/messages?limit=200", headers=tenant.root)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    before = len(messages())
    with f.messages_table_away(tenant.ctx):
        answer = tenant.send(tenant.sender, tenant.secret)
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["error"] == "store_unavailable"
    stored = tenant.send(tenant.sender, tenant.secret)
    assert stored.status_code == 200
    listed = messages()
    assert len(listed) == before + 1
    assert listed[0]["message_id"] == stored.json()["message_id"]


def test_person_with_argon2_password_is_admitted_by_user_id_and_email(tenant: Tenant) -> None:
    person = f.person(tenant.ctx)
    tenant.assign("acme", person.user_id, ["Senders"])
    for identifier in (person.user_id, person.email or ""):
        for _ in range(2):  # the second call is served by the verified-credential cache
            assert tenant.send(identifier, f.DEFAULT_PASSWORD).status_code == 200


def test_oversize_message_gets_413(tenant: Tenant) -> None:
    tenant.client.patch(f"{API}/acme/flows/orders/v1", headers=tenant.root, json={"max_bytes": 10})
    assert tenant.send(tenant.sender, tenant.secret, body=b"x" * 11).status_code == 413
    assert tenant.send(tenant.sender, tenant.secret, body=b"x" * 10).status_code == 200


def test_mpl_is_newest_first_and_paginated(tenant: Tenant) -> None:
    ids = [tenant.send(tenant.sender, tenant.secret).json()["message_id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = tenant.client.get(f"{API}/acme/messages", headers=tenant.root, params=params).json()
        seen += [m["message_id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5


def test_inventory_shows_last_use_flows_called_and_credentials(tenant: Tenant) -> None:
    assert tenant.send(tenant.sender, tenant.secret).status_code == 200
    runtime = tenant.client.app.state.runtime  # type: ignore[attr-defined]
    seen = runtime.last_use.take()  # what the 5-second flush would write
    assert tenant.sender in seen
    with tenant.ctx.sessions() as session, session.begin():
        LastUse.flush(session, seen)
    rows = tenant.client.get(f"{API}/acme/technical-users", headers=tenant.root).json()["items"]
    row = next(r for r in rows if r["user_id"] == tenant.sender)
    assert row["flows_called"] == ["orders/v1"]
    assert row["last_used_at"] is not None
    assert row["credentials"][0]["kind"] == "password"


def test_message_ids_are_unique_time_ordered_uuid7() -> None:
    ids = [new_message_id() for _ in range(5000)]  # > 4 KiB of buffered randomness
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    millis = [u.int >> 80 for u in parsed]
    assert millis == sorted(millis)
    assert abs(millis[-1] - time.time() * 1000) < 60_000
    random_parts = {u.int & ((1 << 62) - 1) for u in parsed}
    assert len(random_parts) == len(ids)


def test_runtime_failures_throttle_only_the_address_and_never_the_right_secret(
    tenant: Tenant,
) -> None:
    """Failed Basic calls with a generated secret count per client address only: after the
    address's budget its failures get 429, while the right secret, of this technical user or
    another, is still admitted (nobody's failures can lock a sender out)."""
    other, other_secret = tenant.technical_user(assign_in="acme")
    assert tenant.send(tenant.sender, tenant.secret).status_code == 200  # no failure yet
    for _ in range(tenant.ctx.settings.auth_failures_per_address):
        assert tenant.send(tenant.sender, "wrong").status_code == 401
    throttled = tenant.send(tenant.sender, "wrong")
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == str(tenant.ctx.settings.signin_window_seconds)
    assert tenant.send(tenant.sender, tenant.secret).status_code == 200
    assert tenant.send(other, other_secret).status_code == 200


def test_a_refusal_waits_for_a_version_read_begun_after_it_arrived() -> None:
    """A read already in flight may predate a change committed elsewhere, so a refusal that
    arrives during it waits for the next read; refusals arriving together share one."""
    first_in_flight = threading.Event()
    release_first = threading.Event()
    reads: list[int] = []

    def refresh() -> Any:
        reads.append(len(reads) + 1)
        number = len(reads)
        if number == 1:
            first_in_flight.set()
            release_first.wait(5)
        return f"snapshot-{number}"

    async def scenario() -> list[Any]:
        recheck = Recheck(refresh)
        early = asyncio.create_task(recheck.since(time.monotonic(), "fallback"))
        assert await asyncio.to_thread(first_in_flight.wait, 5)  # the first read began
        # Arrived after the first read began (their arrival time is taken here). Whether
        # they join that read before it ends or not, they must share the next one.
        late = [asyncio.create_task(recheck.since(time.monotonic(), "fallback")) for _ in range(3)]
        release_first.set()
        return [await early, *[await task for task in late]]

    assert asyncio.run(scenario()) == ["snapshot-1"] + ["snapshot-2"] * 3
    assert reads == [1, 2]


def test_a_version_read_that_fails_or_hangs_leaves_the_refusal_standing() -> None:
    def failing() -> Any:
        raise ConnectionError("database unreachable")

    hung = threading.Event()

    def hanging() -> Any:
        hung.wait(10)  # a store that does not answer until the test is done
        return "too late"

    async def scenario() -> list[Any]:
        try:
            return [
                await Recheck(failing).since(time.monotonic(), "fallback"),
                await Recheck(hanging, timeout=0.2).since(time.monotonic(), "fallback"),
            ]
        finally:
            hung.set()

    assert asyncio.run(scenario()) == ["fallback", "fallback"]
