"""A real ``ostiary serve`` whose PostgreSQL goes away and comes back: one keep-alive
connection gets 503 with ``Retry-After`` while it is away, then 200, without reconnecting.

A 500 went through Starlette's last-resort handler, which re-raises, and uvicorn closed
the connection after it: every client of a load balancer or a pooled HTTP client then saw
a reset besides the error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests import factories as f
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server, StartServer

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def forwarder(fresh_database_url: str) -> Iterator[f.TcpForwarder]:
    through = f.forwarder_for(fresh_database_url)
    yield through
    through.cut()


@pytest.fixture
def forwarded_server(
    start_server: StartServer, fresh_database_url: str, forwarder: f.TcpForwarder
) -> Server:
    started = start_server(OSTIARY_DATABASE_URL=f.forwarded(fresh_database_url, forwarder))
    started.wait_ready()
    return started


def _local_port(answer: httpx.Response) -> int:
    """The client-side port of the connection that carried ``answer``."""
    return int(answer.extensions["network_stream"].get_extra_info("client_addr")[1])


def test_one_keep_alive_connection_gets_503_then_200_when_the_database_is_back(
    forwarded_server: Server, forwarder: f.TcpForwarder
) -> None:
    root = f.basic(ADMIN_EMAIL, ADMIN_PASSWORD)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=forwarded_server.url, timeout=10.0, limits=limits) as http:
        first = http.get("/api/v1/me", headers=root)
        assert first.status_code == 200, first.text
        port = _local_port(first)

        forwarder.cut()
        answers = [
            http.get("/api/v1/me", headers=root),
            http.post(
                "/api/v1/subaccounts",
                headers=root,
                json={"subdomain": "later", "display_name": "Later", "plan": "trial"},
            ),
            http.get("/console/", headers={"Cookie": f"ostiary_session={'s' * 43}"}),
        ]
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"] == "1"
            assert answer.headers.get("connection", "").lower() != "close"
            assert _local_port(answer) == port, "the connection was dropped after a 503"
        assert answers[0].json()["error"] == "store_unavailable"

        forwarder.restore()
        deadline = time.monotonic() + 30
        while (me := http.get("/api/v1/me", headers=root)).status_code != 200:
            assert me.status_code == 503, me.text
            assert time.monotonic() < deadline, "the store did not come back"
            time.sleep(0.1)
        assert _local_port(me) == port, "the connection was dropped while the store was away"
