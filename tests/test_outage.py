"""A database that cannot be reached: every endpoint answers 503 with ``Retry-After``, never
500, and serves again once it is back.

The outage is real: the app talks to PostgreSQL through a TCP forwarder the test cuts, so
connections are refused, the issue's case.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ostiary.app import create_app
from ostiary.clock import FrozenClock
from ostiary.context import AppContext, build_context
from ostiary.settings import Settings
from tests import factories as f
from tests.test_runtime import API, Tenant

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def forwarder(database_url: str) -> Iterator[f.TcpForwarder]:
    through = f.forwarder_for(database_url)
    yield through
    through.cut()


@pytest.fixture
def outage_ctx(
    settings: Settings, clock: FrozenClock, forwarder: f.TcpForwarder
) -> Iterator[AppContext]:
    """The application context on the test database, reached through ``forwarder``."""
    url = f.forwarded(settings.resolved_database_url, forwarder)
    context = build_context(settings.model_copy(update={"database_url": url}), clock=clock)
    yield context
    context.engine.dispose()


@pytest.fixture
def outage_client(outage_ctx: AppContext) -> Iterator[TestClient]:
    app = create_app(outage_ctx.settings, ctx=outage_ctx)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _unavailable(answer: Any, error: str = "store_unavailable") -> None:
    assert answer.status_code == 503, (answer.status_code, answer.text)
    assert answer.headers["Retry-After"] == "1"
    body = answer.json()
    assert body["error"] == error
    assert body.get("detail") or body.get("error_description")


def test_every_endpoint_answers_503_with_retry_after_while_the_database_is_away(
    outage_client: TestClient, outage_ctx: AppContext, forwarder: f.TcpForwarder
) -> None:
    client, ctx = outage_client, outage_ctx
    tenant = Tenant(client, ctx)
    made = client.post(
        f"{API}/acme/oauth-clients",
        headers=tenant.root,
        json={"user_id": tenant.sender, "description": "d"},
    ).json()
    token_form = {
        "grant_type": "client_credentials",
        "client_id": made["client_id"],
        "client_secret": made["client_secret"],
    }
    assert client.post("/oauth/token", data=token_form).status_code == 200
    assert tenant.send(tenant.sender, tenant.secret).status_code == 200

    forwarder.cut()
    _unavailable(client.get("/api/v1/me", headers=tenant.root))
    _unavailable(
        client.post(
            API,
            headers=tenant.root,
            json={"subdomain": "later", "display_name": "Later", "plan": "trial"},
        )
    )
    # The snapshot is current: admitted from memory, but the message cannot be stored.
    _unavailable(tenant.send(tenant.sender, tenant.secret))
    page = client.get("/console/", headers={"Cookie": f"ostiary_session={'s' * 43}"})
    assert page.status_code == 503 and page.headers["Retry-After"] == "1"
    assert page.headers["content-type"].startswith("text/html")
    assert "Temporarily unavailable" in page.text
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503

    ctx.grants.mark_stale()  # as after a change here: nothing may be answered from memory
    _unavailable(tenant.send(tenant.sender, tenant.secret))
    _unavailable(client.post("/oauth/token", data=token_form), "temporarily_unavailable")
    _unavailable(client.get("/oauth/jwks"), "temporarily_unavailable")

    forwarder.restore()
    deadline = time.monotonic() + 20
    while (me := client.get("/api/v1/me", headers=tenant.root)).status_code != 200:
        assert me.status_code == 503, me.text
        assert time.monotonic() < deadline, "the store did not come back"
        time.sleep(0.05)
    assert tenant.send(tenant.sender, tenant.secret).status_code == 200
    assert client.post("/oauth/token", data=token_form).status_code == 200


def test_scim_answers_503_error_resources_while_the_database_is_away(
    outage_client: TestClient, outage_ctx: AppContext, forwarder: f.TcpForwarder
) -> None:
    client, ctx = outage_client, outage_ctx
    boss = f.admin(ctx)
    made = client.post("/api/v1/scim-tokens", headers=f.basic(boss.user_id), json={})
    auth = {"Authorization": f"Bearer {made.json()['token']}"}
    assert client.get("/scim/v2/Users", headers=auth).status_code == 200
    forwarder.cut()
    for answer in (
        client.get("/scim/v2/Users", headers=auth),
        client.post(
            "/scim/v2/Users",
            headers=auth,
            json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x"},
        ),
    ):
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1"
        assert answer.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    forwarder.restore()
