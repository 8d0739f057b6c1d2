"""A flow call admitted through a group is refused on a second worker or server within 1 s
of the caller leaving the group (issue 12).

The change goes through one process; real runtime calls go to the other worker(s) until 20
answers in a row agree. Polling is bounded and the assertion is on the measured delay.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server, StartServer

pytestmark = pytest.mark.e2e
ADMIN = (ADMIN_EMAIL, ADMIN_PASSWORD)
LIMIT_SECONDS = 1.0
SD = "acme-groups"


def _prepare(api: httpx.Client) -> tuple[str, str, str]:
    """A sub-account with a Basic flow, a technical user, and a group holding Senders there."""
    for url, body in (
        ("/api/v1/subaccounts", {"subdomain": SD, "display_name": "G", "plan": "trial"}),
        (
            f"/api/v1/subaccounts/{SD}/role-collections",
            {"name": "Senders", "roles": ["ESBMessaging.send"]},
        ),
        (f"/api/v1/subaccounts/{SD}/flows", {"path": "orders", "auth": ["basic"]}),
    ):
        assert api.post(url, json=body).status_code == 201
    created = api.post("/api/v1/technical-users", json={"display_name": "sender", "subdomain": SD})
    assert created.status_code == 201, created.text
    group = api.post("/api/v1/groups", json={"name": "Integration Team"})
    assert group.status_code == 201, group.text
    group_id = group.json()["group_id"]
    assigned = api.put(
        f"/api/v1/subaccounts/{SD}/groups/{group_id}/role-collections",
        json={"role_collections": ["Senders"]},
    )
    assert assigned.status_code == 200, assigned.text
    return created.json()["user_id"], created.json()["password"], group_id


def _first_time(
    reader: httpx.Client, auth: tuple[str, str], expected: int, *, since: float
) -> float:
    """Seconds from ``since`` until 20 consecutive runtime calls answer ``expected``."""
    streak_started: float | None = None
    streak = 0
    while time.monotonic() - since < 5.0:
        answer = reader.post(f"/t/{SD}/http/orders", content=b"<order/>", auth=auth)
        if answer.status_code == expected:
            if streak == 0:
                streak_started = time.monotonic()
            streak += 1
            if streak >= 20 and streak_started is not None:
                return streak_started - since
        else:
            streak = 0
    return float("inf")


def _join_and_leave(writer: httpx.Client, reader: httpx.Client) -> None:
    user_id, password, group_id = _prepare(writer)
    auth = (user_id, password)
    joined_at = time.monotonic()
    added = writer.post(f"/api/v1/groups/{group_id}/members", json={"user_id": user_id})
    assert added.status_code == 201, added.text
    admitted = _first_time(reader, auth, 200, since=joined_at)
    assert admitted < LIMIT_SECONDS, f"joining took {admitted:.2f}s to reach the other worker"
    left_at = time.monotonic()
    assert writer.delete(f"/api/v1/groups/{group_id}/members/{user_id}").status_code == 204
    refused = _first_time(reader, auth, 403, since=left_at)
    assert refused < LIMIT_SECONDS, f"leaving took {refused:.2f}s to reach the other worker"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_leaving_a_group_is_refused_by_a_second_worker_within_one_second_sqlite(
    start_server: StartServer,
) -> None:
    server: Server = start_server(workers=2)
    server.wait_ready()
    with (
        httpx.Client(base_url=server.url, auth=ADMIN, timeout=10) as writer,
        # New connections per request spread the calls over both workers.
        httpx.Client(
            base_url=server.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
        ) as reader,
    ):
        _join_and_leave(writer, reader)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_leaving_a_group_is_refused_by_a_second_server_within_one_second_postgresql(
    start_server: StartServer,
) -> None:
    first, second = start_server(), start_server()
    first.wait_ready()
    second.wait_ready()
    with (
        httpx.Client(base_url=first.url, auth=ADMIN, timeout=10) as writer,
        httpx.Client(base_url=second.url, timeout=10) as reader,
    ):
        _join_and_leave(writer, reader)
