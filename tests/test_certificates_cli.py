"""`ostiary cert`: the CA, a signed CSR openssl verifies, a generated bundle, upload, list,
revoke; JSON for scripts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ostiary.cli.main import app
from ostiary.context import AppContext
from tests import factories as f
from tests.pki import make, name


@pytest.fixture
def cli(ctx: AppContext, tmp_path: Path) -> object:
    runner = CliRunner()
    env = {
        "OSTIARY_DATABASE_URL": ctx.settings.resolved_database_url,
        "OSTIARY_DATA_DIR": str(tmp_path / "cli"),
        "OSTIARY_SECRET_KEY": ctx.settings.secret_key or "",
        "OSTIARY_SMTP_URL": "",
    }

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_cert_commands_issue_verify_list_and_revoke(
    cli: object, ctx: AppContext, tmp_path: Path
) -> None:
    run = cli  # type: ignore[assignment]
    owner = f.person(ctx)
    run("subaccount", "create", "acme-cli", "--name", "Acme CLI", "--admin", owner.user_id)
    made = json.loads(
        run(
            "technical-user",
            "create",
            "--name",
            "orders",
            "--owner",
            owner.user_id,
            "--subaccount",
            "acme-cli",
            "--json",
        )
    )
    tu = made[0]["user_id"]
    ca = json.loads(run("cert", "ca", "acme-cli", "--out", str(tmp_path / "ca.pem"), "--json"))[0]
    assert ca["subject_dn"] == "CN=Ostiary CA acme-cli,O=Ostiary"
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "req.pem",
            "-subj",
            "/CN=whatever",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    signed = json.loads(
        run(
            "cert",
            "sign-csr",
            "acme-cli",
            "--user",
            tu,
            "--csr",
            str(tmp_path / "req.pem"),
            "--days",
            "10",
            "--out",
            str(tmp_path / "cert.pem"),
            "--json",
        )
    )[0]
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", "ca.pem", "cert.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0 and "OK" in verified.stdout, verified.stderr
    gen = json.loads(
        run(
            "cert",
            "generate",
            "acme-cli",
            "--user",
            tu,
            "--p12-out",
            str(tmp_path / "b.p12"),
            "--key-out",
            str(tmp_path / "gen-key.pem"),
            "--json",
        )
    )[0]
    assert len(gen["pkcs12_passphrase"]) >= 32
    assert (tmp_path / "gen-key.pem").stat().st_mode & 0o777 == 0o600
    (tmp_path / "ext.pem").write_text(make(name("partner")).pem)
    run("cert", "upload", "acme-cli", "--user", tu, "--cert", str(tmp_path / "ext.pem"))
    listed = json.loads(run("cert", "list", "acme-cli", "--user", tu, "--json"))
    assert sorted(r["source"] for r in listed) == ["external", "generated", "issued"]
    revoked = json.loads(
        run(
            "cert",
            "revoke",
            "acme-cli",
            signed["certificate_id"],
            "--reason",
            "key_compromise",
            "--json",
        )
    )[0]
    assert revoked["status"] == "revoked" and revoked["changed"] is True
    again = json.loads(run("cert", "revoke", "acme-cli", signed["certificate_id"], "--json"))[0]
    assert again["changed"] is False
    out = run(
        "cert",
        "sign-csr",
        "acme-cli",
        "--user",
        owner.user_id,
        "--csr",
        str(tmp_path / "req.pem"),
        code=1,
    )
    assert "not a technical user" in out
    assert "Certificates of acme-cli" in run("cert", "list", "acme-cli")
