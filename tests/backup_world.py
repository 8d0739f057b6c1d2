"""A small but complete installation for the backup tests, and fresh restore targets."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from ostiary.backup.export import make_backup
from ostiary.cli.main import app
from ostiary.context import AppContext
from ostiary.models import Base
from tests import factories as f
from tests.conftest import new_postgres_database

API = "/api/v1/subaccounts"
#: Payloads that are not text, not UTF-8, empty, and large enough to matter.
PAYLOADS = [b"", b"\x00\xff\xfe binary", "grüße €".encode(), os.urandom(4096)]


class World:
    """Persons, a technical user with a secret, an OAuth client, a token, flows, messages."""

    def __init__(self, client: TestClient, ctx: AppContext, *, messages: int = 12) -> None:
        self.http, self.ctx = client, ctx
        self.admin = f.admin(ctx).user_id
        self.root = f.basic(self.admin)
        self.person = f.person(ctx, given_name="Grace").user_id
        for sd in ("acme", "beta"):
            self._ok(
                self.http.post(API, headers=self.root, json={"subdomain": sd, "display_name": sd})
            )
            self._ok(
                self.http.post(
                    f"{API}/{sd}/flows",
                    headers=self.root,
                    json={"path": "orders/v1", "auth": ["basic", "oauth"]},
                )
            )
            self._ok(
                self.http.post(
                    f"{API}/{sd}/role-collections",
                    headers=self.root,
                    json={"name": "Senders", "roles": ["ESBMessaging.send"]},
                )
            )
        made = self._ok(
            self.http.post("/api/v1/technical-users", headers=self.root, json={"display_name": "b"})
        )
        self.sender, self.secret = made["user_id"], made["password"]
        self._ok(
            self.http.put(
                f"{API}/acme/users/{self.sender}/role-collections",
                headers=self.root,
                json={"role_collections": ["Senders"]},
            )
        )
        oauth = self._ok(
            self.http.post(
                f"{API}/acme/oauth-clients",
                headers=self.root,
                json={"user_id": self.sender, "description": "orders"},
            )
        )
        answer = self.http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": oauth["client_id"],
                "client_secret": oauth["client_secret"],
            },
        )
        self.token = str(self._ok(answer)["access_token"])
        self.client_id, self.client_secret = oauth["client_id"], oauth["client_secret"]
        self.sent: dict[str, bytes] = {}
        for n in range(messages):
            self.send(PAYLOADS[n % len(PAYLOADS)] + str(n).encode())

    @staticmethod
    def _ok(answer: Any) -> Any:
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def send(self, payload: bytes) -> str:
        """Store one message with the technical user's secret."""
        answer = self.http.post(
            "/t/acme/http/orders/v1",
            content=payload,
            headers={**f.basic(self.sender, self.secret), "Content-Type": "application/xml"},
        )
        message_id = str(self._ok(answer)["message_id"])
        self.sent[message_id] = payload
        return message_id


def row_counts(url: str) -> dict[str, int]:
    """Rows per table of the database at ``url``."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t.name: int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)
                for t in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


@contextmanager
def fresh_target(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database nobody has touched: a new SQLite path or a new PostgreSQL database."""
    if backend == "sqlite":
        directory = tmp_path / f"target-{uuid.uuid4().hex[:6]}"
        yield f"sqlite:///{directory / 'ostiary.db'}"
        return
    with new_postgres_database("ostiary_restore") as url:
        yield url


def rewrite(source: Path, target: Path, change: Callable[[dict[str, bytes]], None]) -> None:
    """Copy a backup file with its members (name to bytes) changed by ``change``."""
    with tarfile.open(source, "r:gz") as tar:
        members = {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }
    change(members)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    target.write_bytes(gzip.compress(buffer.getvalue()))


def manifest(members: dict[str, bytes]) -> dict[str, Any]:
    """The manifest of a backup's members, parsed."""
    parsed: dict[str, Any] = json.loads(members["manifest.json"])
    return parsed


KEY = "test-secret-key-0123456789abcdef"  # the conftest settings' key


def small_backup(client: TestClient, ctx: AppContext, tmp_path: Path) -> Path:
    """A backup of a small world (three messages), without the secret key."""
    World(client, ctx, messages=3)
    target = tmp_path / "good.backup"
    make_backup(
        url=ctx.settings.resolved_database_url,
        target=target,
        secret_key=ctx.secret_key,
        include_secret_key=False,
    )
    return target


def run_cli(args: list[str], url: str, data_dir: Path, key: str | None = KEY) -> tuple[int, str]:
    """Run the CLI on ``url`` and ``data_dir``: its exit code and output on one line."""
    env = {"OSTIARY_DATABASE_URL": url, "OSTIARY_DATA_DIR": str(data_dir)}
    if key is not None:
        env["OSTIARY_SECRET_KEY"] = key
    result = CliRunner().invoke(app, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, " ".join(result.output.split())
