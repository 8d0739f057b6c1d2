"""A tiny local receiver for the forward-mode benchmark: answers every request with 200.

A raw ASGI app on uvicorn (httptools, uvloop, no access log), so it costs the machine as
little as a Python server can and the benchmark measures Ostiary rather than the receiver.
It listens on 127.0.0.1 only. Run: ``python benchmarks/receiver.py --port 8999``.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

BODY = b'{"received":true}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Drain the request body, then answer 200 with a small JSON body."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    """Serve on 127.0.0.1 at ``--port``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port: int = parser.parse_args().port
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
