"""Promises of the README that are about operating Ostiary: health, metrics, cookies,
secrets, the dev outbox and message retention."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import create_engine

from ostiary.app import create_app
from ostiary.clock import FrozenClock
from ostiary.context import AppContext, build_context
from ostiary.db import transaction
from ostiary.runtime.retention import cleanup
from ostiary.settings import Environment, Settings
from tests import factories as f
from tests.test_runtime import API, Tenant


def test_readyz_is_unavailable_once_the_store_writer_stopped(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    client.portal.call(runtime.writer.stop)  # type: ignore[union-attr]
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json() == {"status": "unavailable", "detail": "store writer stopped"}


def test_healthz_readyz_and_metrics(
    client: TestClient, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'ostiary_http_requests_total{area="readyz",method="GET",status="200"} 1.0' in (
        metrics.text
    )
    # The database goes away: ready no longer, alive still.
    monkeypatch.setattr(ctx, "engine", create_engine("postgresql+psycopg://x@127.0.0.1:1/x"))
    down = client.get("/readyz")
    assert down.status_code == 503 and down.json()["status"] == "unavailable"
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("secret", ["changeme", "secret", "short-16chars"])
def test_published_or_short_secret_keys_are_refused_outside_development(secret: str) -> None:
    with pytest.raises(ValidationError, match="OSTIARY_SECRET_KEY"):
        Settings(secret_key=secret)
    assert Settings(secret_key=secret, env=Environment.development).secret_key == secret


@pytest.fixture
def https_client(settings: Settings, clock: FrozenClock) -> Iterator[tuple[TestClient, AppContext]]:
    secure = settings.model_copy(update={"public_url": "https://ostiary.example"})
    context = build_context(secure, clock=clock)
    with TestClient(create_app(secure, ctx=context), base_url="https://testserver") as c:
        yield c, context
    context.engine.dispose()


def test_session_cookie_is_secure_behind_https(https_client: tuple[TestClient, AppContext]) -> None:
    client, context = https_client
    user = f.person(context)
    form = client.get("/console/signin")
    token = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post(
        "/console/signin",
        follow_redirects=False,
        data={"csrf_token": token, "identifier": user.user_id, "password": f.DEFAULT_PASSWORD},
    )
    cookie = next(
        v
        for k, v in answer.headers.multi_items()
        if k == "set-cookie" and v.startswith("ostiary_session=")
    )
    assert "Secure" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()


def test_dev_outbox_page_only_in_development(settings: Settings, clock: FrozenClock) -> None:
    for env, status in ((Environment.development, 200), (Environment.production, 404)):
        current = settings.model_copy(update={"env": env})
        context = build_context(current, clock=clock)
        with TestClient(create_app(current, ctx=context), raise_server_exceptions=False) as c:
            c.post(
                "/api/v1/registrations",
                json={
                    "email": f"{env.value}@example.com",
                    "given_name": "Dev",
                    "family_name": "Outbox",
                    "password": "correct horse battery staple",
                },
            )
            page = c.get("/console/dev/outbox")
            assert page.status_code == status
            assert ("Activate your Ostiary account" in page.text) is (status == 200)
        context.engine.dispose()


def test_retention_deletes_only_expired_messages(tenant: Tenant, clock: FrozenClock) -> None:
    tenant.client.patch(f"{API}/other", headers=tenant.root, json={"message_retention_days": 60})
    tenant.assign("other", tenant.sender, ["Senders"])
    old = tenant.send(tenant.sender, tenant.secret).json()["message_id"]
    kept_elsewhere = tenant.send(tenant.sender, tenant.secret, sd="other").json()["message_id"]
    clock.advance(timedelta(days=31))  # past acme's default 30 days, within other's 60
    fresh = tenant.send(tenant.sender, tenant.secret).json()["message_id"]
    with transaction(tenant.ctx.sessions) as session:
        assert cleanup(session, clock=clock) == 1
    assert tenant.client.get(f"{API}/acme/messages/{old}", headers=tenant.root).status_code == 404
    assert tenant.client.get(f"{API}/acme/messages/{fresh}", headers=tenant.root).status_code == 200
    assert (
        tenant.client.get(f"{API}/other/messages/{kept_elsewhere}", headers=tenant.root).status_code
        == 200
    )


@pytest.fixture
def tenant(client: TestClient, ctx: AppContext) -> Tenant:
    return Tenant(client, ctx)


def test_served_app_moves_its_startup_heap_out_of_the_collectors_reach(tmp_path: Path) -> None:
    """``ostiary serve``'s factory freezes what startup built, so full collections do not
    walk it (they stalled the event loop ~100 ms under load). In a fresh interpreter."""
    script = (
        "import gc\n"
        "from ostiary.asgi import app_from_env\n"
        "before = gc.get_freeze_count()\n"
        "app_from_env()\n"
        "print(before, gc.get_freeze_count())\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OSTIARY_")},
        "OSTIARY_DATA_DIR": str(tmp_path),
        "OSTIARY_SECRET_KEY": "test-secret-key-0123456789abcdef",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    assert before == 0 and after > 10_000
