"""An ASGI app that echoes the client certificate it was handed, and a way to serve it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from ostiary.gate.client_certs import certificate_error, ignored_header, presented
from ostiary.tls.contexts import ServerContexts
from ostiary.tls.serving import protocol_class
from tests.conftest import free_port


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """JSON: what ``presented``/``ignored_header``/``certificate_error`` say about the request."""
    assert scope["type"] == "http"
    while (await receive()).get("more_body"):
        pass
    cert = presented(scope)
    tls = scope.get("extensions", {}).get("tls")
    body = json.dumps(
        {
            "fingerprint": None if cert is None else cert.thumbprint.hex(),
            "source": None if cert is None else cert.source,
            "chain_length": None if cert is None else len(cert.chain),
            "presented_id": id(cert),
            "tls_id": id(tls),
            "tls_version": None if tls is None else tls["tls_version"],
            "cipher_suite": None if tls is None else tls["cipher_suite"],
            "scheme": scope["scheme"],
            "client": scope["client"][0],
            "ignored": ignored_header(scope),
            "error": certificate_error(scope),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(
    app: ASGIApp = echo,
    *,
    contexts: ServerContexts | None = None,
    http: type[asyncio.Protocol] | None = None,
) -> Iterator[str]:
    """``app`` on uvicorn in a thread (HTTPS with ``contexts``, and then by default the
    protocol ``ostiary serve`` uses); yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=http or (protocol_class() if contexts is not None else "auto"),
        lifespan="off",
        log_config=None,
        access_log=False,
        ssl_context_factory=None if contexts is None else lambda c, d: contexts.listening,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # uvicorn sets it once the socket listens
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"{'http' if contexts is None else 'https'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def as_json(text: str | bytes) -> dict[str, Any]:
    """The echo's answer, parsed."""
    answer: dict[str, Any] = json.loads(text)
    return answer
