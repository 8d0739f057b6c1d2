"""The token endpoint in process: one ASGI call of ``POST /oauth/token`` per iteration.

No sockets and no HTTP parser: the app's middleware stack, the hot path, client
authentication (``client_secret_basic``), signing, the JSON answer. ``--certificate``
also presents a client certificate in the scope (as the TLS protocol or a trusted proxy
would), so the token is certificate-bound (RFC 8705 §3).

    python benchmarks/token_inprocess.py [--number 3000] [--repeat 5] [--certificate]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import tempfile
import timeit
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import factories as f
from tests.tls_pki import issue

from ostiary.app import create_app
from ostiary.context import build_context
from ostiary.gate import client_certs
from ostiary.migrate import upgrade
from ostiary.settings import Settings


def main() -> None:
    """Set up a client on a fresh SQLite file, then time the token endpoint."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--certificate", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="ostiary-token-bench-"))
    url = f"sqlite:///{home / 'ostiary.db'}"
    upgrade(url)
    settings = Settings(
        data_dir=home / "data",
        database_url=url,
        smtp_url="smtp://127.0.0.1:1",
        secret_key="bench-secret-key-0123456789abcdef",
        public_url="http://testserver",
    )
    ctx = build_context(settings)
    app = create_app(settings, ctx=ctx)
    with TestClient(app) as http:
        root = f.basic(f.admin(ctx).user_id)
        http.post(
            "/api/v1/subaccounts",
            headers=root,
            json={"subdomain": "bench", "display_name": "bench"},
        )
        user = http.post(
            "/api/v1/technical-users", headers=root, json={"display_name": "bot"}
        ).json()["user_id"]
        answer = http.post(
            "/api/v1/subaccounts/bench/oauth-clients", headers=root, json={"user_id": user}
        )
        assert answer.status_code == 201, answer.text
        made = answer.json()
        basic = base64.b64encode(f"{made['client_id']}:{made['client_secret']}".encode())
        body = b"grant_type=client_credentials"
        headers = [
            (b"host", b"testserver"),
            (b"authorization", b"Basic " + basic),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ]
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/oauth/token",
            "raw_path": b"/oauth/token",
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "extensions": {},
        }
        if args.certificate:
            leaf = issue("sender-1")
            scope["extensions"]["tls"] = client_certs.extension((leaf.der,), "tls")
        loop = asyncio.new_event_loop()
        statuses: list[int] = []

        async def once() -> None:
            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            await app(dict(scope), receive, send)

        def run() -> None:
            loop.run_until_complete(once())

        run()
        assert statuses == [200], statuses
        times = timeit.repeat(run, number=args.number, repeat=args.repeat)
        best = min(times) / args.number * 1e6
        median = sorted(times)[len(times) // 2] / args.number * 1e6
        print(f"token endpoint in process: best {best:.1f} µs, median {median:.1f} µs per request")
        loop.close()


if __name__ == "__main__":
    main()
