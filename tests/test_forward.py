"""Forward mode against a real local HTTP receiver: relay, receiver errors, timeouts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ostiary.context import AppContext
from ostiary.runtime.relay import Relay
from tests import factories as f
from tests.conftest import free_port

API = "/api/v1/subaccounts"


class Receiver(BaseHTTPRequestHandler):
    """/ok echoes with 201, /fail answers 500, /slow answers after 3 s, /big answers 4 KiB;
    all set a cookie."""

    received: list[tuple[str, bytes, dict[str, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Receiver.received.append((self.path, body, dict(self.headers)))
        if self.path == "/slow":
            time.sleep(3)
        status = {"/ok": 201, "/fail": 500}.get(
            self.path.removeprefix("http://receiver.example"), 200
        )
        reply = b"x" * 4096 if self.path == "/big" else b'{"accepted": true}'
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Set-Cookie", "receiver-session=one-sender; Path=/")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except BrokenPipeError:
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _setup(client: TestClient, ctx: AppContext, receiver: str) -> tuple[dict[str, str], str, str]:
    root = f.basic(f.admin(ctx).user_id)
    client.post(API, headers=root, json={"subdomain": "acme", "display_name": "A"})
    for path, target, timeout in (
        ("ok", "/ok", 5),
        ("fail", "/fail", 5),
        ("slow", "/slow", 0.5),
        ("gone", None, 1),
        ("big", "/big", 5),
    ):
        url = f"{receiver}{target}" if target else f"http://127.0.0.1:{free_port()}/nobody"
        answer = client.post(
            f"{API}/acme/flows",
            headers=root,
            json={
                "path": path,
                "mode": "forward",
                "receiver_url": url,
                "timeout_seconds": timeout,
                "max_bytes": 1024 if path == "big" else 10 * 1024 * 1024,
            },
        )
        assert answer.status_code == 201, answer.text
    client.post(
        f"{API}/acme/role-collections",
        headers=root,
        json={"name": "Senders", "roles": ["ESBMessaging.send"]},
    )
    made = client.post("/api/v1/technical-users", headers=root, json={"display_name": "x"}).json()
    client.put(
        f"{API}/acme/users/{made['user_id']}/role-collections",
        headers=root,
        json={"role_collections": ["Senders"]},
    )
    return root, made["user_id"], made["password"]


def _mpl(client: TestClient, root: dict[str, str], flow: str) -> dict[str, Any]:
    items = client.get(f"{API}/acme/messages", headers=root, params={"flow": flow}).json()["items"]
    assert len(items) == 1
    return dict(items[0])


def test_forward_relays_the_receivers_answer(
    client: TestClient, ctx: AppContext, receiver: str
) -> None:
    root, user, secret = _setup(client, ctx, receiver)
    answer = client.post(
        "/t/acme/http/ok",
        content=b"<a/>",
        headers={**f.basic(user, secret), "Content-Type": "application/xml"},
    )
    assert answer.status_code == 201 and answer.json() == {"accepted": True}
    path, body, headers = Receiver.received[0]
    assert path == "/ok" and body == b"<a/>"
    assert headers["Content-Type"] == "application/xml"
    assert headers["X-Ostiary-Sender"] == user
    entry = _mpl(client, root, "ok")
    assert entry["status"] == "forwarded" and entry["message_id"] == headers["X-Ostiary-Message-Id"]


def test_receiver_error_is_502_and_marked_failed(
    client: TestClient, ctx: AppContext, receiver: str
) -> None:
    root, user, secret = _setup(client, ctx, receiver)
    answer = client.post("/t/acme/http/fail", content=b"x", headers=f.basic(user, secret))
    assert answer.status_code == 502 and answer.json()["error"] == "bad_gateway"
    entry = _mpl(client, root, "fail")
    assert entry["status"] == "failed" and "500" in entry["detail"]


def test_receiver_timeout_is_502_and_marked_failed(
    client: TestClient, ctx: AppContext, receiver: str
) -> None:
    root, user, secret = _setup(client, ctx, receiver)
    started = time.monotonic()
    answer = client.post("/t/acme/http/slow", content=b"x", headers=f.basic(user, secret))
    assert answer.status_code == 502
    assert time.monotonic() - started < 2.5  # the flow's 0.5 s timeout, not the receiver's 3 s
    entry = _mpl(client, root, "slow")
    assert entry["status"] == "failed" and "did not answer" in entry["detail"]
    assert len([r for r in Receiver.received if r[0] == "/slow"]) == 1  # no retry


@pytest.mark.parametrize(
    ("flow", "detail"), [("gone", "unreachable"), ("big", "larger than 1024 bytes")]
)
def test_unreachable_receiver_or_oversize_answer_is_502(
    client: TestClient, ctx: AppContext, receiver: str, flow: str, detail: str
) -> None:
    root, user, secret = _setup(client, ctx, receiver)
    answer = client.post(f"/t/acme/http/{flow}", content=b"x", headers=f.basic(user, secret))
    assert answer.status_code == 502
    assert detail in _mpl(client, root, flow)["detail"]


def test_relay_keeps_no_cookies_and_invents_no_content_type(
    client: TestClient, ctx: AppContext, receiver: str
) -> None:
    """A receiver's cookie for one call must not ride along on the next (maybe another
    sender's); a call without a content type reaches the receiver without one."""
    _, user, secret = _setup(client, ctx, receiver)
    for _ in range(2):
        answer = client.post("/t/acme/http/ok", content=b"raw", headers=f.basic(user, secret))
        assert answer.status_code == 201
    assert len(Receiver.received) == 2
    for _, body, headers in Receiver.received:
        assert body == b"raw"
        assert "Cookie" not in headers
        assert "Content-Type" not in headers


def test_relay_sends_no_netrc_credentials(
    client: TestClient,
    ctx: AppContext,
    receiver: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Receiver URLs are chosen by tenants: the host's ~/.netrc must not reach them."""
    netrc = tmp_path / "netrc"
    netrc.write_text("default login svcuser password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    _, user, secret = _setup(client, ctx, receiver)
    answer = client.post("/t/acme/http/ok", content=b"x", headers=f.basic(user, secret))
    assert answer.status_code == 201
    assert len(Receiver.received) == 1
    assert "Authorization" not in Receiver.received[0][2]


def test_relay_uses_the_environment_s_proxy_unless_no_proxy_says_otherwise(
    receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver fixture stands in for the proxy: a proxied request names the absolute
    URL in its request line."""
    monkeypatch.setenv("HTTP_PROXY", receiver.removeprefix("http://"))  # no scheme: allowed
    monkeypatch.setenv("NO_PROXY", receiver.removeprefix("http://"))  # host:port
    for name in ("http_proxy", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    async def relay_twice() -> list[int]:
        relay = Relay()
        try:
            via_proxy = await relay.post(
                "http://receiver.example/ok", b"a", headers={}, timeout=5, max_answer_bytes=1024
            )
            direct = await relay.post(
                f"{receiver}/ok", b"b", headers={}, timeout=5, max_answer_bytes=1024
            )
            return [via_proxy.status, direct.status]
        finally:
            await relay.close()

    assert asyncio.run(relay_twice()) == [201, 201]
    assert [path for path, _, _ in Receiver.received] == ["http://receiver.example/ok", "/ok"]


def test_a_delivered_message_is_answered_even_if_its_mpl_entry_cannot_be_stored(
    client: TestClient, ctx: AppContext, receiver: str
) -> None:
    """The receiver already has it: a 503 would make the sender deliver it twice."""
    _, user, secret = _setup(client, ctx, receiver)
    with f.messages_table_away(ctx):
        answer = client.post("/t/acme/http/ok", content=b"<a/>", headers=f.basic(user, secret))
    assert answer.status_code == 201 and answer.json() == {"accepted": True}
    assert len(Receiver.received) == 1
