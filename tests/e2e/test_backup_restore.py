"""Backup while messages arrive, restore into a fresh directory, serve it (issue 13).

A real installation (persons registered by mail, technical users with secrets, OAuth
clients, flows, 1,000 stored messages) is backed up with the real ``ostiary backup``
while senders keep sending; ``ostiary restore`` loads it into a new database; a new server
on it must sign people in, admit the technical users with their secrets and the token
signed before the backup, hold every message acknowledged before the backup began with its
exact payload (and every other message in it whole), and ``ostiary audit verify`` passes.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from ostiary.runtime.models import Message
from tests.backup_world import fresh_target
from tests.conftest import BACKENDS, SmtpSink, link_token
from tests.e2e.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    SECRET_KEY,
    Server,
    StartServer,
    ostiary_command,
)
from tests.factories import basic

pytestmark = pytest.mark.e2e
ADMIN = (ADMIN_EMAIL, ADMIN_PASSWORD)
API = "/api/v1/subaccounts"
PERSON_PASSWORD = "correct horse battery staple"
SEED_MESSAGES = 1000


def _ok(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code in (200, 201, 202), answer.text
    return answer.json() if answer.content else {}  # type: ignore[no-any-return]


class Installation:
    """What the test creates on the first server and checks on the restored one."""

    def __init__(self, server: Server, smtp: SmtpSink) -> None:
        self.url = server.url
        self.persons: list[str] = []
        self.technical: list[tuple[str, str]] = []
        self.tokens: list[str] = []
        with httpx.Client(base_url=server.url, auth=ADMIN, timeout=10) as api:
            for sd in ("acme", "globex"):
                _ok(api.post(API, json={"subdomain": sd, "display_name": sd.title()}))
                _ok(
                    api.post(
                        f"{API}/{sd}/flows",
                        json={"path": "orders/v1", "auth": ["basic", "oauth"]},
                    )
                )
                _ok(api.post(f"{API}/{sd}/flows", json={"path": "invoices", "auth": ["basic"]}))
                _ok(
                    api.post(
                        f"{API}/{sd}/role-collections",
                        json={"name": "Senders", "roles": ["ESBMessaging.send"]},
                    )
                )
            for n in range(2):
                email = f"person{n}@example.com"
                registered = api.post(
                    "/api/v1/registrations",
                    json={
                        "email": email,
                        "given_name": "Per",
                        "family_name": f"Son{n}",
                        "password": PERSON_PASSWORD,
                    },
                )
                _ok(registered)
                token = link_token(smtp.wait_for(email, subject="Activate"))
                self.persons.append(
                    _ok(api.post("/api/v1/activations", json={"token": token}))["user_id"]
                )
            for n, sd in enumerate(("acme", "acme", "globex")):
                made = _ok(api.post("/api/v1/technical-users", json={"display_name": f"bot {n}"}))
                user = made["user_id"]
                _ok(
                    api.put(
                        f"{API}/{sd}/users/{user}/role-collections",
                        json={"role_collections": ["Senders"]},
                    )
                )
                self.technical.append((user, made["password"]))
                if sd == "acme":
                    client = _ok(
                        api.post(
                            f"{API}/acme/oauth-clients", json={"user_id": user, "description": "c"}
                        )
                    )
                    issued = api.post(
                        "/oauth/token",
                        data={"grant_type": "client_credentials"},
                        auth=(client["client_id"], client["client_secret"]),
                    )
                    self.tokens.append(_ok(issued)["access_token"])


class Senders:
    """Threads storing messages; every acknowledged message is remembered with its payload."""

    def __init__(self, url: str, credentials: tuple[str, str]) -> None:
        self.url, self.credentials = url, credentials
        self.acknowledged: dict[str, bytes] = {}
        self.lock = threading.Lock()

    def send(self, http: httpx.Client, n: int) -> None:
        payload = f"<order n='{n}'>{os.urandom(24).hex()}</order>".encode() + os.urandom(8)
        answer = http.post("/t/acme/http/orders/v1", content=payload)
        if answer.status_code == 200:
            with self.lock:
                self.acknowledged[answer.json()["message_id"]] = payload

    def seed(self, count: int) -> None:
        """``count`` messages over 8 keep-alive connections."""
        clients = [
            httpx.Client(base_url=self.url, auth=self.credentials, timeout=10) for _ in range(8)
        ]
        try:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda n: self.send(clients[n % 8], n), range(count)))
        finally:
            for client in clients:
                client.close()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Senders that keep going until the block ends."""
        stop = threading.Event()

        def loop(k: int) -> None:
            with httpx.Client(base_url=self.url, auth=self.credentials, timeout=10) as http:
                n = 0
                while not stop.is_set():
                    self.send(http, 10_000 * (k + 1) + n)
                    n += 1

        threads = [threading.Thread(target=loop, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                thread.join(20)

    def snapshot(self) -> dict[str, bytes]:
        """What was acknowledged so far."""
        with self.lock:
            return dict(self.acknowledged)


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ostiary_command(), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_backup_while_sending_restores_a_working_installation(
    start_server: StartServer, smtp: SmtpSink, tmp_path: Path, backend: str
) -> None:
    """From each backend into the other one (when the run has both)."""
    started = time.monotonic()
    others = [b for b in BACKENDS if b != backend]
    target_backend = others[0] if others else backend
    first = start_server()
    first.wait_ready()
    world = Installation(first, smtp)
    senders = Senders(first.url, world.technical[0])
    senders.seed(SEED_MESSAGES)
    assert len(senders.snapshot()) == SEED_MESSAGES

    file = tmp_path / "ostiary.backup"
    with senders.running():
        while len(senders.snapshot()) < SEED_MESSAGES + 20:  # the senders are under way
            time.sleep(0.01)
        before = senders.snapshot()
        made = _cli(["backup", str(file)], first.env, tmp_path)
        after = senders.snapshot()
    assert made.returncode == 0, made.stderr
    warning = " ".join(made.stderr.split())
    assert "you need the same secret key to restore" in warning.lower()
    assert oct(file.stat().st_mode & 0o777) == "0o600"
    assert len(after) > len(before), "no message was sent while the backup ran"

    with fresh_target(target_backend, tmp_path) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSTIARY_")}
        env.update(
            OSTIARY_DATA_DIR=str(tmp_path / "restored-data"),
            OSTIARY_DATABASE_URL=url,
            OSTIARY_SECRET_KEY=SECRET_KEY,
        )
        restored = _cli(["restore", str(file)], env, tmp_path)
        assert restored.returncode == 0, restored.stderr + restored.stdout
        assert "audit chain intact" in restored.stdout
        second = start_server(OSTIARY_DATABASE_URL=url, OSTIARY_PUBLIC_URL=first.url)
        second.wait_ready()
        first.stop()
        with httpx.Client(base_url=second.url, timeout=10) as http:
            assert http.get("/api/v1/me", auth=ADMIN).status_code == 200
            for person in world.persons:
                assert (
                    http.get("/api/v1/me", headers=basic(person, PERSON_PASSWORD)).status_code
                    == 200
                )
            for user, secret in world.technical:
                sd = "globex" if user == world.technical[2][0] else "acme"
                answer = http.post(
                    f"/t/{sd}/http/orders/v1", content=b"<after/>", auth=(user, secret)
                )
                assert answer.status_code == 200, answer.text
            for token in world.tokens:
                answer = http.post(
                    "/t/acme/http/orders/v1",
                    content=b"<bearer/>",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert answer.status_code == 200, answer.text

        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(select(Message.id, Message.size, Message.payload)).all()
        finally:
            engine.dispose()
        stored = {row.id: row.payload for row in rows}
        assert len(rows) >= len(before) + len(world.technical) + len(world.tokens)
        missing = [m for m in before if stored.get(m) != before[m]]
        assert not missing, f"{len(missing)} messages acknowledged before the backup differ"
        sent = after | {}
        for row in rows:
            assert row.payload is not None and len(row.payload) == row.size
            if row.id in sent:
                assert row.payload == sent[row.id]
        # The same verification as `ostiary audit verify` (which `restore` ran already),
        # now over the restored chain and the events the new server added.
        verified = httpx.get(f"{second.url}/api/v1/audit-events/verify", auth=ADMIN, timeout=30)
        assert verified.status_code == 200, verified.text
        assert verified.json()["ok"] is True, verified.json()
    print(f"backup/restore e2e: {time.monotonic() - started:.1f} s")
