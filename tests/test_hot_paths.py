"""The token endpoint answered before the framework's stack, and small responses in one write."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ostiary.app import create_app
from ostiary.clock import FrozenClock
from ostiary.context import AppContext, build_context
from ostiary.hot_paths import HotPaths
from ostiary.http_protocol import CoalescingHttpToolsProtocol, _CoalescingTransport
from ostiary.ops import Metrics
from ostiary.settings import Settings
from tests.test_oauth import Setup

# ---------------------------------------------------------------- HotPaths


@pytest.fixture
def setup(client: TestClient, ctx: AppContext) -> Setup:
    return Setup(client, ctx)


def test_the_token_endpoint_is_counted_and_logged_like_every_other_request(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="ostiary.access"):
        setup.token()
        assert setup.token_response(secret="wrong").status_code == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "ostiary.access"]
    assert any(line.startswith("POST /oauth/token 200 ") for line in lines), lines
    assert any(line.startswith("POST /oauth/token 401 ") for line in lines), lines
    metrics = setup.http.get("/metrics").text
    assert 'ostiary_http_requests_total{area="oauth",method="POST",status="200"} 1.0' in metrics
    assert 'ostiary_http_requests_total{area="oauth",method="POST",status="401"} 1.0' in metrics


def test_other_methods_on_the_token_path_still_get_the_routers_answer(setup: Setup) -> None:
    assert setup.http.get("/oauth/token").status_code == 405


def _app_with(endpoint: Any) -> TestClient:
    async def rest(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("the full stack")(scope, receive, send)

    hot = HotPaths(rest, [Route("/hot", endpoint, methods=["POST"])], metrics=Metrics())
    return TestClient(hot, raise_server_exceptions=False)


def test_a_hot_endpoint_that_fails_answers_500_in_the_api_shape_without_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("secret internals")

    client = _app_with(broken)  # no lifespan: the app is two endpoints
    answer = client.post("/hot")
    assert client.get("/hot").text == "the full stack"
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal_error", "detail": "an unexpected error occurred"}
    assert "secret internals" not in answer.text
    assert any("unhandled error on POST /hot" in r.getMessage() for r in caplog.records)


@pytest.fixture
def behind_proxy(settings: Settings, clock: FrozenClock) -> Iterator[tuple[TestClient, AppContext]]:
    trusting = settings.model_copy(update={"trusted_proxies": (ipaddress.ip_network("127.0.0.1"),)})
    context = build_context(trusting, clock=clock)
    app = create_app(trusting, ctx=context)
    with TestClient(app, raise_server_exceptions=False, client=("127.0.0.1", 40000)) as c:
        yield c, context
    context.engine.dispose()


def test_behind_a_trusted_proxy_the_token_endpoint_sees_the_forwarded_caller(
    behind_proxy: tuple[TestClient, AppContext],
) -> None:
    client, context = behind_proxy
    setup = Setup(client, context)
    refused = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": setup.client_id},
        headers={"X-Forwarded-For": "203.0.113.20", "Authorization": "Basic eDp5"},
    )
    assert refused.status_code == 401
    deadline = time.monotonic() + 5  # audited in the background: poll for the event
    while True:
        events = client.get(
            "/api/v1/audit-events", headers=setup.root, params={"action": "oauth:token:denied"}
        ).json()["items"]
        if events or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [e["detail"]["after"]["client_address"] for e in events] == ["203.0.113.20"]


# ---------------------------------------------------------------- one write per response


class _Recorder:
    """The bits of a transport the coalescing wrapper calls."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def set_protocol(self, protocol: Any) -> None: ...


def test_a_head_and_its_body_leave_in_one_write() -> None:
    async def scenario() -> list[bytes]:
        real = _Recorder()
        wrapped = _CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        wrapped.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        wrapped.write(b"ok")
        await asyncio.sleep(0)  # one turn of the loop: the scheduled flush finds nothing
        return real.writes

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]


def test_a_lone_head_leaves_at_the_end_of_the_turn_and_close_writes_what_is_pending() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes], bool]:
        real = _Recorder()
        wrapped = _CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        wrapped.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        before = list(real.writes)
        await asyncio.sleep(0)
        after_turn = list(real.writes)
        wrapped.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        wrapped.close()
        return before, after_turn + real.writes[len(after_turn) :], real.closed

    before, writes, closed = asyncio.run(scenario())
    assert before == []
    assert writes == [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 400 Bad Request\r\n\r\n"]
    assert closed


@pytest.fixture
def served() -> Iterator[int]:
    """A real uvicorn server with the coalescing protocol and an echo app; its port."""

    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await PlainTextResponse(b"got " + body)(scope, receive, send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        echo, http=CoalescingHttpToolsProtocol, log_config=None, lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)  # waiting on a signal (started), not ordering events
        assert server.started
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _read_response(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(
        next(
            v
            for k, _, v in (h.partition(b": ") for h in head.split(b"\r\n"))
            if k.lower() == b"content-length"
        )
    )
    while len(rest) < length:
        rest += conn.recv(65536)
    return head + b"\r\n\r\n" + rest


def test_keep_alive_requests_100_continue_and_connection_close_work_through_the_protocol(
    served: int,
) -> None:
    with socket.create_connection(("127.0.0.1", served), timeout=10) as conn:
        for body in (b"one", b"two"):
            conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n" + body)
            assert _read_response(conn).endswith(b"got " + body)
        # The 100 Continue is a head without a body: it must leave before the client sends.
        conn.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        assert conn.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.sendall(b"four")
        assert _read_response(conn).endswith(b"got four")
        conn.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\n!"
        )
        last = _read_response(conn)
        assert last.endswith(b"got !")
        assert conn.recv(65536) == b""  # closed after the whole answer was written


def test_runtime_calls_take_the_hot_path_and_keep_their_metrics_and_405(setup: Setup) -> None:
    token = setup.token()
    assert setup.call(token).status_code == 200
    assert setup.call("not-a-token").status_code == 401
    assert setup.http.get("/t/acme/http/orders").status_code == 405
    metrics = setup.http.get("/metrics").text
    assert 'ostiary_http_requests_total{area="t",method="POST",status="200"} 1.0' in metrics
    assert 'ostiary_http_requests_total{area="t",method="POST",status="401"} 1.0' in metrics
    assert 'ostiary_http_requests_total{area="t",method="GET",status="405"} 1.0' in metrics
