"""Every store-mode message acknowledged with 2xx survives ``kill -9`` of the server (issue 4).

Client threads send messages as fast as the server takes them; the server is killed with
SIGKILL in the middle; a new server on the same database must return every acknowledged
message with its exact payload. Requests that got no answer may or may not be stored; the
only promise is about the acknowledged ones.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, StartServer

pytestmark = pytest.mark.e2e
ADMIN = (ADMIN_EMAIL, ADMIN_PASSWORD)


def _setup(url: str) -> tuple[str, str]:
    with httpx.Client(base_url=url, auth=ADMIN, timeout=10) as api:
        assert (
            api.post(
                "/api/v1/subaccounts", json={"subdomain": "acme-kill", "display_name": "K"}
            ).status_code
            == 201
        )
        assert (
            api.post("/api/v1/subaccounts/acme-kill/flows", json={"path": "orders"}).status_code
            == 201
        )
        assert (
            api.post(
                "/api/v1/subaccounts/acme-kill/role-collections",
                json={"name": "Senders", "roles": ["ESBMessaging.send"]},
            ).status_code
            == 201
        )
        made = api.post(
            "/api/v1/technical-users", json={"display_name": "sender", "subdomain": "acme-kill"}
        ).json()
        assert (
            api.put(
                f"/api/v1/subaccounts/acme-kill/users/{made['user_id']}/role-collections",
                json={"role_collections": ["Senders"]},
            ).status_code
            == 200
        )
    return made["user_id"], made["password"]


def test_acknowledged_messages_survive_sigkill(start_server: StartServer) -> None:
    server = start_server()
    server.wait_ready()
    user, secret = _setup(server.url)
    acknowledged: dict[str, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def sender(n: int) -> None:
        with httpx.Client(base_url=server.url, auth=(user, secret), timeout=5) as client:
            i = 0
            while not stop.is_set():
                payload = f"message {n}-{i} {os.urandom(8).hex()}".encode()
                i += 1
                try:
                    answer = client.post("/t/acme-kill/http/orders", content=payload)
                except httpx.HTTPError:
                    return  # the server is gone; nothing was acknowledged for this one
                if answer.status_code == 200:
                    with lock:
                        acknowledged[answer.json()["message_id"]] = payload

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # let a good number of messages through first
        with lock:
            if len(acknowledged) >= 200:
                break
        time.sleep(0.05)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert len(acknowledged) >= 50, "too few messages were acknowledged to prove anything"

    again = start_server()
    again.wait_ready()
    with httpx.Client(base_url=again.url, auth=ADMIN, timeout=10) as api:
        missing = []
        for message_id, payload in acknowledged.items():
            stored = api.get(f"/api/v1/subaccounts/acme-kill/messages/{message_id}/payload")
            if stored.status_code != 200 or stored.content != payload:
                missing.append(message_id)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged messages were lost"
