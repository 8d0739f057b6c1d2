"""One caller's bad text never costs another caller's message: request text is cleaned
before it is stored, and a group commit survives a bad write."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.audit.verify import verify_chain
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.textsafe import clean, clean_json
from tests.test_runtime import API, PAYLOAD, Tenant

SENDS = 24
NUL_PATH = "/t/x/http/x%00y"


def test_clean_drops_control_characters_keeps_tab_and_newline_and_cuts_to_length() -> None:
    assert clean("a\x00b\x1bc\x7fd\x85e\tf\ng") == "abcde\tf\ng"
    assert clean("Zoë ✓ 注文") == "Zoë ✓ 注文"
    assert clean("x\ud800y") == "x\ufffdy"
    assert clean("a\x00" * 10, 4) == "aaaa"
    assert clean_json({"k\x00": ["v\x00", 1, None, {"n": "\x07"}]}) == {
        "k": ["v", 1, None, {"n": ""}]
    }


def test_audit_events_with_request_text_are_stored_cleaned_and_the_chain_verifies(
    ctx: AppContext,
) -> None:
    with transaction(ctx.sessions) as session:
        event = record(
            session,
            clock=ctx.clock,
            actor="T\x00" + "9" * 40,
            action=AuditAction.runtime_denied,
            target="/t/x/http/x\x00y" + "z" * 300,
            subdomain="s\x00" * 70,
            reason="unknown user 'ev\x00il'",
            after={"client_address": "10.0.0.1\x00", "header": ["a\x1bb"]},
        )
    assert event.actor == "T" + "9" * 31
    assert event.target.startswith("/t/x/http/xyzz") and len(event.target) == 200
    assert event.subdomain == "s" * 63
    assert event.detail == {
        "reason": "unknown user 'evil'",
        "after": {"client_address": "10.0.0.1", "header": ["ab"]},
    }
    with transaction(ctx.read_sessions) as session:
        assert verify_chain(session).ok


@pytest.fixture
def tenant(client: TestClient, ctx: AppContext) -> Tenant:
    return Tenant(client, ctx)


def _nul_user() -> dict[str, str]:
    token = base64.b64encode(b"ev\x00il:secret").decode()
    return {"Authorization": f"Basic {token}"}


def _denials(client: TestClient, root: dict[str, str], expected: int) -> list[dict[str, Any]]:
    """The runtime denials stored so far (written in the background: poll with a deadline)."""
    deadline = time.monotonic() + 10
    while True:
        events: list[dict[str, Any]] = client.get(
            "/api/v1/audit-events",
            headers=root,
            params={"action": "runtime:denied", "limit": 200},
        ).json()["items"]
        if len(events) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.02)


def test_senders_get_200_while_unauthenticated_callers_send_nul_bytes(tenant: Tenant) -> None:
    """Issue 9: requests to ``/t/x/http/x%00y`` with ``Bearer x`` wrote a denial whose target
    held a NUL byte; PostgreSQL refused it, the whole group commit failed, and real senders
    got 503. Here every denial lands in one batch with the senders' messages: the writer's
    gate is held until all of them are queued."""
    client = tenant.client
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    writer = runtime.writer
    bearer = {"Authorization": "Bearer x"}
    with ThreadPoolExecutor(max_workers=SENDS) as pool:
        runtime.gate.__enter__()  # the writer thread waits there with its first batch
        try:
            bad = [client.post(NUL_PATH, content=b"x", headers=bearer)]
            sends = []
            for i in range(SENDS):
                business_id = f"PO-{i}\x00" + "9" * 300
                sends.append(
                    pool.submit(
                        tenant.send, tenant.sender, tenant.secret, **{"X-Business-Id": business_id}
                    )
                )
                if i % 4 == 0:
                    bad.append(client.post(NUL_PATH, content=b"x", headers=bearer))
                    bad.append(client.post("/t/acme/http/orders/v1", headers=_nul_user()))
            # A denial is queued before its 401 is sent; every send and every denial but
            # the first (at the gate) must be queued before the gate opens. ``_pending`` is
            # the writer's queue, read only to know when that is.
            deadline = time.monotonic() + 10
            while len(writer._pending) < SENDS + len(bad) - 1:
                assert time.monotonic() < deadline, f"only {len(writer._pending)} queued"
                time.sleep(0.01)
        finally:
            runtime.gate.__exit__()
        answers = [send.result(timeout=30) for send in sends]
    assert [b.status_code for b in bad] == [401] * len(bad)
    assert [a.status_code for a in answers] == [200] * SENDS, [a.text for a in answers]
    listed = client.get(f"{API}/acme/messages", headers=tenant.root, params={"limit": 200}).json()[
        "items"
    ]
    assert {m["message_id"] for m in listed} >= {a.json()["message_id"] for a in answers}
    business_ids = {m["business_id"] for m in listed}
    assert {f"PO-{i}" + "9" * (200 - len(f"PO-{i}")) for i in range(SENDS)} <= business_ids
    denials = _denials(client, tenant.root, len(bad))
    assert len(denials) == len(bad)
    targets = sorted(d["target"] for d in denials)
    assert targets.count("/t/x/http/xy") == len(bad) // 2 + 1
    assert client.get("/api/v1/audit-events/verify", headers=tenant.root).json()["ok"] is True
    first = answers[0].json()["message_id"]
    stored = client.get(f"{API}/acme/messages/{first}/payload", headers=tenant.root)
    assert stored.content == PAYLOAD
