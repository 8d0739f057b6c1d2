"""Behind real nginx (Debian's package) with ``OSTIARY_TRUSTED_PROXIES``: the message log and
the throttle see the caller, not the proxy (issue 9).

nginx runs as a child process with its own prefix, configuration, pid and logs under the
test's tmp dir, in the foreground (``daemon off``) and as one process (``master_process
off``: no workers to switch users for). It forwards the way its documentation recommends:

    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;

Two kinds of callers reach it. A real one connects from its own loopback address
(127.0.0.3), and nginx, trusted at 127.0.0.1, names it. And the test itself acts as an
outer proxy at 127.0.0.1 (trusted too) that already wrote ``X-Forwarded-For: 203.0.113.7``;
nginx appends its peer, ``203.0.113.7, 127.0.0.1``: a chain of two proxies, where the
rightmost address that is not a trusted proxy is the caller's.
"""

from __future__ import annotations

import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SmtpSink, free_port, link_token, unavailable
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server, StartServer
from tests.factories import basic

pytestmark = pytest.mark.e2e
ADMIN = (ADMIN_EMAIL, ADMIN_PASSWORD)
SD = "acme-proxy"
FLOW = f"/t/{SD}/http/orders"
PASSWORD = "correct horse battery staple"
FAILURES_PER_ADDRESS = 5
NGINX = Path("/usr/sbin/nginx")

CONFIG = """\
daemon off;
master_process off;
pid {home}/nginx.pid;
error_log {home}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {home}/access.log;
    client_body_temp_path {home}/body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def _nginx_binary() -> str:
    found = shutil.which("nginx") or (str(NGINX) if NGINX.exists() else None)
    if found is None:
        unavailable("nginx")
    assert found is not None
    return found


def _start_nginx(
    home: Path,
    upstream: str,
    template: str = CONFIG,
    *,
    scheme: str = "http",
    verify: ssl.SSLContext | bool = True,
    **values: str,
) -> tuple[subprocess.Popen[bytes], str]:
    """nginx in front of ``upstream``, ready to answer; the process and its URL.

    ``template`` is formatted with ``home``, ``port``, ``upstream`` and ``values``."""
    binary = _nginx_binary()
    home.mkdir()
    port = free_port()
    config = home / "nginx.conf"
    config.write_text(template.format(home=home, port=port, upstream=upstream, **values))
    with (home / "stderr.log").open("wb") as err:
        process = subprocess.Popen(
            # -e: the error log before the configuration is read, not /var/log/nginx.
            [binary, "-p", str(home), "-c", str(config), "-e", str(home / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            pytest.fail(f"nginx exited: {(home / 'error.log').read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2, verify=verify).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("nginx did not answer within 20 s")
        time.sleep(0.05)


@pytest.fixture
def behind_nginx(
    start_server: StartServer, tmp_path: Path
) -> Iterator[tuple[Server, httpx.Client]]:
    """``ostiary serve`` trusting 127.0.0.1, and a client of nginx in front of it."""
    server = start_server(
        OSTIARY_TRUSTED_PROXIES="127.0.0.1",
        OSTIARY_SIGNIN_FAILURES_PER_ADDRESS=str(FAILURES_PER_ADDRESS),
        # High, so only the per-address count can throttle here.
        OSTIARY_SIGNIN_FAILURES_PER_ACCOUNT="50",
    )
    server.wait_ready()
    process, url = _start_nginx(tmp_path / "nginx", server.url)
    try:
        with httpx.Client(base_url=url, timeout=10) as proxy:
            yield server, proxy
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _person_who_may_send(server: Server, smtp: SmtpSink) -> str:
    """A sub-account with a Basic flow and an activated person holding its role: user ID."""
    with server.client() as http:
        registered = http.post(
            "/api/v1/registrations",
            json={
                "email": "sender@example.com",
                "given_name": "Sam",
                "family_name": "Sender",
                "password": PASSWORD,
            },
        )
        assert registered.status_code == 202, registered.text
        activated = http.post(
            "/api/v1/activations",
            json={"token": link_token(smtp.wait_for("sender@example.com", subject="Activate"))},
        )
        assert activated.status_code == 200, activated.text
        user_id = str(activated.json()["user_id"])
    with httpx.Client(base_url=server.url, auth=ADMIN, timeout=10) as api:
        for path, body in (
            ("/api/v1/subaccounts", {"subdomain": SD, "display_name": "P", "plan": "trial"}),
            (f"/api/v1/subaccounts/{SD}/flows", {"path": "orders", "auth": ["basic"]}),
            (
                f"/api/v1/subaccounts/{SD}/role-collections",
                {"name": "Senders", "roles": ["ESBMessaging.send"]},
            ),
            (f"/api/v1/subaccounts/{SD}/members", {"user_id": user_id, "roles": ["Viewer"]}),
        ):
            answer = api.post(path, json=body)
            assert answer.status_code == 201, answer.text
        assigned = api.put(
            f"/api/v1/subaccounts/{SD}/users/{user_id}/role-collections",
            json={"role_collections": ["Senders"]},
        )
        assert assigned.status_code == 200, assigned.text
    return user_id


def _send(client: httpx.Client, user_id: str, password: str, **headers: str) -> httpx.Response:
    return client.post(FLOW, content=b"<order/>", headers={**basic(user_id, password), **headers})


def _logged_addresses(server: Server) -> dict[str, str]:
    """Message ID → client address, from the message log."""
    with httpx.Client(base_url=server.url, auth=ADMIN, timeout=10) as api:
        answer = api.get(f"/api/v1/subaccounts/{SD}/messages")
        assert answer.status_code == 200, answer.text
        return {m["message_id"]: m["client_address"] for m in answer.json()["items"]}


def test_message_log_shows_the_callers_address_not_nginxs(
    behind_nginx: tuple[Server, httpx.Client], smtp: SmtpSink
) -> None:
    server, proxy = behind_nginx
    user_id = _person_who_may_send(server, smtp)
    # A caller at its own address; nginx is the only proxy.
    from_own_address = httpx.Client(
        base_url=str(proxy.base_url),
        timeout=10,
        transport=httpx.HTTPTransport(local_address="127.0.0.3"),
    )
    with from_own_address:
        direct = _send(from_own_address, user_id, PASSWORD)
    # Two proxies; the client's own Forwarded header is passed through by nginx and not
    # believed (X-Forwarded-For wins).
    chained = _send(
        proxy,
        user_id,
        PASSWORD,
        **{"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=192.0.2.66"},
    )
    # Sent straight to Ostiary from an untrusted address: the forged header is ignored.
    with httpx.Client(
        base_url=server.url,
        timeout=10,
        transport=httpx.HTTPTransport(local_address="127.0.0.4"),
    ) as straight:
        forged = _send(straight, user_id, PASSWORD, **{"X-Forwarded-For": "203.0.113.99"})
    for answer in (direct, chained, forged):
        assert answer.status_code == 200, answer.text
    logged = _logged_addresses(server)
    assert logged[direct.json()["message_id"]] == "127.0.0.3"
    assert logged[chained.json()["message_id"]] == "203.0.113.7"
    assert logged[forged.json()["message_id"]] == "127.0.0.4"


def test_a_guesser_at_one_forwarded_address_does_not_stop_a_sender_at_another(
    behind_nginx: tuple[Server, httpx.Client], smtp: SmtpSink
) -> None:
    server, proxy = behind_nginx
    user_id = _person_who_may_send(server, smtp)
    guesser = {"X-Forwarded-For": "203.0.113.7"}
    sender = {"X-Forwarded-For": "203.0.113.8"}
    statuses = [_send(proxy, user_id, f"wrong-{n}", **guesser).status_code for n in range(6)]
    assert statuses == [401] * FAILURES_PER_ADDRESS + [429]
    # The guesser's address is throttled even with the right password ...
    assert _send(proxy, user_id, PASSWORD, **guesser).status_code == 429
    # ... and the owner at another address is not: the throttle saw two callers, not nginx.
    answer = _send(proxy, user_id, PASSWORD, **sender)
    assert answer.status_code == 200, answer.text
    assert _logged_addresses(server)[answer.json()["message_id"]] == "203.0.113.8"


def test_without_trusted_proxies_a_forged_x_forwarded_for_is_ignored(
    start_server: StartServer, smtp: SmtpSink
) -> None:
    server = start_server()
    server.wait_ready()
    user_id = _person_who_may_send(server, smtp)
    with server.client() as http:
        answer = _send(http, user_id, PASSWORD, **{"X-Forwarded-For": "203.0.113.7"})
    assert answer.status_code == 200, answer.text
    assert _logged_addresses(server)[answer.json()["message_id"]] == "127.0.0.1"
