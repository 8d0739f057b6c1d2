"""HTTPS served by Ostiary's TLS module: optional client certificates, trust that follows the
anchor source without a restart, and the ASGI TLS extension uvicorn does not fill.

Real parts: uvicorn (in-process, both HTTP protocols), and curl, the openssl CLI and httpx
as clients. The anchors are an in-memory fake of the port the certificates domain fills.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import pickle
import shutil
import ssl
import subprocess
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ostiary.tls.anchors import Anchor, MemoryAnchors
from ostiary.tls.contexts import ServerContexts
from ostiary.tls.protocol import TLSH11Protocol, TLSHttpToolsProtocol
from ostiary.tls.serving import (
    ContextFactory,
    SnapshotAnchors,
    protocol_class,
    use_grants,
    uvicorn_options,
)
from tests.conftest import unavailable
from tests.tls_echo import as_json, serving
from tests.tls_pki import NOW, Issued, issue


@dataclass
class Pki:
    """A CA we trust, one we do not, the server's certificate and files for all of them."""

    home: Path
    ca: Issued
    server: Issued
    client: Issued
    stranger: Issued  # issued by a CA nobody trusts
    server_files: tuple[Path, Path]

    def files(self, who: Issued, name: str) -> tuple[Path, Path]:
        """Certificate and key files of ``who``."""
        return who.write(self.home, name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    home = tmp_path_factory.mktemp("pki")
    ca = issue("Acme Test CA", ca=True)
    server = issue("localhost", ca, server=True)
    (home / "ca.pem").write_text(ca.pem)
    return Pki(
        home=home,
        ca=ca,
        server=server,
        client=issue("sender-1", ca),
        stranger=issue("sender-x", issue("Nobody's CA", ca=True)),
        server_files=server.write(home, "server"),
    )


@pytest.fixture
def anchors(pki: Pki) -> MemoryAnchors:
    return MemoryAnchors([pki.ca.pem])


@pytest.fixture(params=[TLSHttpToolsProtocol, TLSH11Protocol], ids=["httptools", "h11"])
def url(request: pytest.FixtureRequest, pki: Pki, anchors: MemoryAnchors) -> Iterator[str]:
    """The echo app over HTTPS, trusting ``anchors``."""
    contexts = ServerContexts(*pki.server_files, anchors)
    with serving(contexts=contexts, http=request.param) as base:
        yield base


def _client(pki: Pki, who: Issued | None, name: str = "client") -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki.home / "ca.pem"))
    if who is not None:
        context.load_cert_chain(*map(str, pki.files(who, name)))
    return httpx.Client(verify=context, timeout=10)


def _curl(pki: Pki, url: str, who: Issued | None, *extra: str) -> subprocess.CompletedProcess[str]:
    curl = shutil.which("curl") or unavailable("curl")
    cert: list[str] = []
    if who is not None:
        files = pki.files(who, "curl")
        cert = ["--cert", str(files[0]), "--key", str(files[1])]
    return subprocess.run(
        [str(curl), "-sS", "--cacert", str(pki.home / "ca.pem"), *cert, *extra, url],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


# ---------------------------------------------------------------- what the app receives


def test_curl_with_a_client_certificate_sees_its_fingerprint(url: str, pki: Pki) -> None:
    done = _curl(pki, url, pki.client)
    assert done.returncode == 0, done.stderr
    answer = as_json(done.stdout)
    assert answer["fingerprint"] == pki.client.fingerprint
    assert answer["source"] == "tls"
    assert answer["chain_length"] == 1  # Python 3.11 has no verified-chain API: the leaf alone
    assert answer["scheme"] == "https"


def test_httpx_keeps_one_certificate_object_per_connection(url: str, pki: Pki) -> None:
    with _client(pki, pki.client) as http:
        first, second = (as_json(http.get(url).text) for _ in range(2))
    assert first["fingerprint"] == second["fingerprint"] == pki.client.fingerprint
    # Decoded once per connection: the same objects on every request of it.
    assert first["presented_id"] == second["presented_id"]
    assert first["tls_id"] == second["tls_id"]
    assert first["tls_version"] == 0x0304
    assert isinstance(first["cipher_suite"], int) and first["cipher_suite"] > 0


def test_without_a_client_certificate_the_request_goes_on_without_one(url: str, pki: Pki) -> None:
    with _client(pki, None) as http:
        answer = as_json(http.get(url).text)
    assert answer["fingerprint"] is None
    assert answer["tls_version"] in (0x0303, 0x0304)
    done = _curl(pki, url, None, "--tlsv1.2", "--tls-max", "1.2")
    assert done.returncode == 0, done.stderr
    assert as_json(done.stdout)["tls_version"] == 0x0303


def test_a_certificate_no_anchor_vouches_for_fails_the_handshake(url: str, pki: Pki) -> None:
    # TLS 1.3: the client hears of the refusal only when it reads (curl: "empty reply").
    done = _curl(pki, url, pki.stranger)
    assert done.returncode != 0 and not done.stdout
    # TLS 1.2: during the handshake (35: SSL connect error; asyncio closes the connection
    # without flushing OpenSSL's alert, so the client sees no "unknown ca", just the end).
    done = _curl(pki, url, pki.stranger, "--tls-max", "1.2")
    assert done.returncode == 35, done.stderr
    with _client(pki, pki.stranger, "stranger") as http, pytest.raises(httpx.TransportError):
        http.get(url)
    with _client(pki, pki.client) as http:  # and the server serves on
        assert as_json(http.get(url).text)["fingerprint"] == pki.client.fingerprint


def test_an_expired_certificate_reaches_the_app_so_the_gate_can_name_the_reason(
    url: str, pki: Pki
) -> None:
    expired = issue(
        "sender-old",
        pki.ca,
        not_before=NOW - dt.timedelta(days=30),
        not_after=NOW - dt.timedelta(days=1),
    )
    with _client(pki, expired, "expired") as http:
        assert as_json(http.get(url).text)["fingerprint"] == expired.fingerprint


# ---------------------------------------------------------------- trust without restart


def test_an_anchor_added_after_start_is_trusted_on_the_next_connection(
    url: str, pki: Pki, anchors: MemoryAnchors
) -> None:
    other_ca = issue("Partner CA", ca=True)
    partner = issue("partner-1", other_ca)
    assert _curl(pki, url, partner).returncode != 0
    anchors.add(other_ca.pem)
    done = _curl(pki, url, partner)
    assert done.returncode == 0, done.stderr
    assert as_json(done.stdout)["fingerprint"] == partner.fingerprint


def test_a_removed_anchor_refuses_new_connections_and_open_ones_keep_theirs(
    url: str, pki: Pki, anchors: MemoryAnchors
) -> None:
    with _client(pki, pki.client) as open_connection:
        assert open_connection.get(url).status_code == 200
        anchors.remove(pki.ca.pem)
        assert _curl(pki, url, pki.client).returncode != 0
        # Verified at its handshake; the gate re-checks trust on every request anyway.
        assert as_json(open_connection.get(url).text)["fingerprint"] == pki.client.fingerprint
    anchors.add(pki.ca.pem)
    assert _curl(pki, url, pki.client).returncode == 0


@pytest.mark.parametrize("self_signed", [True, False], ids=["self-signed", "issued-elsewhere"])
def test_a_pinned_leaf_is_its_own_anchor(
    url: str, pki: Pki, anchors: MemoryAnchors, self_signed: bool
) -> None:
    # VERIFY_X509_PARTIAL_CHAIN: a leaf in the store is trusted without its issuer.
    leaf = issue("external-1") if self_signed else issue("external-2", issue("Their CA", ca=True))
    assert _curl(pki, url, leaf).returncode != 0
    anchors.add(leaf.der)  # DER works as well as PEM
    done = _curl(pki, url, leaf)
    assert done.returncode == 0, done.stderr
    assert as_json(done.stdout)["fingerprint"] == leaf.fingerprint


@pytest.mark.parametrize("servername", [[], ["-noservername"], ["-servername", "localhost"]])
def test_the_switch_happens_with_and_without_sni(
    pki: Pki, servername: list[str], tmp_path: Path
) -> None:
    """The listening context trusts nothing; only the per-handshake switch to the current
    context (sni_callback) can let the client in, with or without a server name."""
    openssl = shutil.which("openssl") or unavailable("openssl")
    anchors = MemoryAnchors()
    contexts = ServerContexts(*pki.server_files, anchors)
    anchors.add(pki.ca.pem)
    cert, key = pki.files(pki.client, "s_client")
    with serving(contexts=contexts) as base:
        done = subprocess.run(
            [
                str(openssl),
                "s_client",
                "-connect",
                base.removeprefix("https://"),
                *servername,
                "-cert",
                str(cert),
                "-key",
                str(key),
                "-CAfile",
                str(pki.home / "ca.pem"),
                "-quiet",
                "-ign_eof",
            ],
            input="GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    assert pki.client.fingerprint in done.stdout, done.stderr


def test_curl_to_an_ip_address_sends_no_sni_and_is_switched_too(pki: Pki) -> None:
    anchors = MemoryAnchors()
    contexts = ServerContexts(*pki.server_files, anchors)
    anchors.add(pki.ca.pem)
    with serving(contexts=contexts) as base:  # base is https://127.0.0.1:port
        done = _curl(pki, base, pki.client)
    assert done.returncode == 0, done.stderr
    assert as_json(done.stdout)["fingerprint"] == pki.client.fingerprint


def test_certificates_made_with_the_openssl_cli_work(pki: Pki, tmp_path: Path) -> None:
    openssl = str(shutil.which("openssl") or unavailable("openssl"))

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=tmp_path, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=CLI CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=cli-sender")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "client.pem", "-days", "2")  # fmt: skip
    anchors = MemoryAnchors([(tmp_path / "ca.pem").read_text()])
    with serving(contexts=ServerContexts(*pki.server_files, anchors)) as base:
        curl = str(shutil.which("curl") or unavailable("curl"))
        done = subprocess.run(
            [curl, "-sS", "--cacert", str(pki.home / "ca.pem"), "--cert",
             str(tmp_path / "client.pem"), "--key", str(tmp_path / "client.key"), base],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    der = ssl.PEM_cert_to_DER_cert((tmp_path / "client.pem").read_text())
    assert as_json(done.stdout)["fingerprint"] == hashlib.sha256(der).hexdigest()


# ---------------------------------------------------------------- the contexts themselves


def test_contexts_are_tls12_plus_optional_client_certs_and_rebuilt_only_on_change(
    pki: Pki,
) -> None:
    calls: list[int] = []

    def counting() -> tuple[Hashable, Sequence[Anchor]]:
        calls.append(1)
        return 1, (pki.ca.pem,)

    contexts = ServerContexts(*pki.server_files, counting)
    listening = contexts.listening
    assert listening.minimum_version is ssl.TLSVersion.TLSv1_2
    assert listening.verify_mode is ssl.CERT_OPTIONAL
    assert listening.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
    assert contexts.current() is listening and contexts.current() is listening
    assert len(calls) == 3


def test_a_bad_anchor_is_skipped_and_a_failing_source_keeps_the_last_trust(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    state: dict[str, object] = {"version": 1, "fail": False}

    def source() -> tuple[Hashable, Sequence[Anchor]]:
        if state["fail"]:
            raise RuntimeError("database gone")
        return state["version"], ("not a certificate", pki.ca.pem)  # type: ignore[return-value]

    contexts = ServerContexts(*pki.server_files, source)
    assert "tls anchor 0 skipped" in caplog.text
    assert len(contexts.listening.get_ca_certs()) == 1
    state["fail"] = True
    with serving(contexts=contexts) as base, _client(pki, pki.client) as http:
        assert as_json(http.get(base).text)["fingerprint"] == pki.client.fingerprint
    assert "tls anchors unavailable" in caplog.text


# ---------------------------------------------------------------- how ostiary serve uses it


def test_plain_http_installs_nothing(pki: Pki) -> None:
    assert uvicorn_options(None, None) == {}


def test_tls_installs_the_protocol_and_a_picklable_factory(pki: Pki) -> None:
    use_grants(None)  # no application in this process: nothing is trusted
    options = uvicorn_options(*pki.server_files)
    assert options["http"] is protocol_class() is TLSHttpToolsProtocol  # httptools installed
    assert issubclass(TLSHttpToolsProtocol, HttpToolsProtocol)
    assert issubclass(TLSH11Protocol, H11Protocol)
    # Worker processes are spawned with the config: the factory must survive pickling.
    factory = pickle.loads(pickle.dumps(options["ssl_context_factory"]))
    assert isinstance(factory, ContextFactory) and isinstance(factory.anchors(), SnapshotAnchors)
    context = factory(None, lambda: None)
    assert context.sni_callback is not None and context.get_ca_certs() == []


def test_an_unreadable_certificate_fails_before_serving(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("nope")
    with pytest.raises(ssl.SSLError):
        uvicorn_options(tmp_path / "bad.pem", None)
    with pytest.raises(FileNotFoundError):
        uvicorn_options(tmp_path / "missing.pem", pki.server_files[1])
