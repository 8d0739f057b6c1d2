"""CLI for the sub-account CA and technical users' client certificates."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ostiary.certificates import authority, issuing, service, trust
from ostiary.certificates.models import Certificate, RevocationReason
from ostiary.cli.common import CLI_ACTOR, JsonFlag, err, output, write
from ostiary.identity import service as identity
from ostiary.tenancy import service as tenancy

cert_app = typer.Typer(
    help="Client certificates of technical users and the sub-account CA.", no_args_is_help=True
)

UserOpt = Annotated[str, typer.Option("--user", help="The technical user it authenticates.")]
DaysOpt = Annotated[int, typer.Option("--days", min=1, max=365, help="Validity, 1-365 days.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write the certificate PEM here.")]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        err.print(f"[red]cannot read {path}:[/red] {exc.strerror}")
        raise typer.Exit(2) from exc


def _write_secret(path: Path, data: bytes) -> None:
    """Write key material readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _row(row: Certificate, user_id: str) -> dict[str, Any]:
    return {
        "certificate_id": row.certificate_id,
        "user_id": user_id,
        "source": row.source.value,
        "status": row.status.value,
        "subject_dn": row.subject_dn,
        "fingerprint_sha256": row.fingerprint_sha256,
        "not_after": row.not_after,
        "last_used_at": row.last_used_at,
    }


@cert_app.command("ca")
def ca(
    subdomain: str,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Make a new CA; the old one stays trusted.")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write the CA PEM here.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the sub-account's CA (created at the first use), or rotate it."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        if rotate:
            made = authority.rotate_ca(session, ctx, actor=CLI_ACTOR, subaccount=s)
        else:
            made = authority.ensure_ca(session, ctx, actor=CLI_ACTOR, subaccount=s)
        pem = made.certificate_pem
        row: dict[str, Any] = {
            "subject_dn": made.subject_dn,
            "fingerprint_sha256": made.fingerprint_sha256,
            "not_after": made.not_after,
            "crl_url": authority.crl_url(ctx, s, made),
            "certificate_pem": made.certificate_pem,
        }
    if out is not None:
        out.write_text(pem)
    shown = row if as_json else {k: v for k, v in row.items() if k != "certificate_pem"}
    output([shown], as_json=as_json, title=f"CA of {subdomain}")


@cert_app.command("sign-csr")
def sign_csr(
    subdomain: str,
    user_id: UserOpt,
    csr: Annotated[Path, typer.Option("--csr", help="The PEM CSR (openssl req -new …).")],
    days: DaysOpt = 365,
    out: OutOpt = None,
    chain_out: Annotated[
        Path | None, typer.Option("--chain-out", help="Write certificate + CA PEM here.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Sign a CSR for a technical user (the subject is the user's, not the CSR's)."""
    csr_pem = _read(csr)
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        user = identity.get_user(session, user_id=user_id)
        issued = issuing.sign_csr(
            session,
            ctx,
            actor=CLI_ACTOR,
            subaccount=s,
            user=user,
            csr_pem=csr_pem,
            validity_days=days,
        )
        row = _row(issued.certificate, user.user_id)
    if out is not None:
        out.write_text(issued.certificate.certificate_pem)
    if chain_out is not None:
        chain_out.write_text(issued.chain_pem)
    if as_json:
        row |= {
            "certificate_pem": issued.certificate.certificate_pem,
            "chain_pem": issued.chain_pem,
        }
    output([row], as_json=as_json, title="Certificate")


@cert_app.command("generate")
def generate(
    subdomain: str,
    user_id: UserOpt,
    p12_out: Annotated[Path, typer.Option("--p12-out", help="Write the PKCS#12 bundle here.")],
    days: DaysOpt = 365,
    out: OutOpt = None,
    key_out: Annotated[
        Path | None, typer.Option("--key-out", help="Also write the private key PEM (mode 600).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Generate a key and its certificate; the bundle's passphrase is printed only now."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        user = identity.get_user(session, user_id=user_id)
        made = issuing.generate(
            session, ctx, actor=CLI_ACTOR, subaccount=s, user=user, validity_days=days
        )
        row = _row(made.certificate, user.user_id)
    _write_secret(p12_out, made.pkcs12)
    if key_out is not None:
        key, _, _ = pkcs12.load_key_and_certificates(made.pkcs12, made.passphrase.encode())
        assert key is not None
        _write_secret(
            key_out,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    if out is not None:
        out.write_text(made.certificate.certificate_pem)
    row["pkcs12_passphrase"] = made.passphrase
    if as_json:
        row |= {
            "certificate_pem": made.certificate.certificate_pem,
            "chain_pem": made.chain_pem,
            "pkcs12_base64": base64.b64encode(made.pkcs12).decode(),
        }
    output([row], as_json=as_json, title="Certificate (the passphrase is shown only now)")


@cert_app.command("upload")
def upload(
    subdomain: str,
    user_id: UserOpt,
    cert: Annotated[Path, typer.Option("--cert", help="The external certificate PEM.")],
    as_json: JsonFlag = False,
) -> None:
    """Pin an external certificate (self-signed allowed) by its SHA-256 fingerprint."""
    pem = _read(cert)
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        user = identity.get_user(session, user_id=user_id)
        row = service.upload_external(
            session, ctx, actor=CLI_ACTOR, subaccount=s, user=user, certificate_pem=pem
        )
        shown = _row(row, user.user_id)
    output([shown], as_json=as_json, title="Pinned certificate")


@cert_app.command("trust")
def trust_ca(
    subdomain: str,
    ca_file: Annotated[Path, typer.Option("--ca", help="CA certificate or chain to its root.")],
    description: Annotated[str, typer.Option(help="Whose CA it is.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Trust an external CA (the upload must verify by signatures)."""
    pem = _read(ca_file)
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        made = trust.add_trusted_ca(
            session,
            ctx,
            actor=CLI_ACTOR,
            subaccount=s,
            certificate_pem=pem,
            description=description,
        )
        row = {
            "trusted_ca_id": made.trusted_ca_id,
            "subject_dn": made.subject_dn,
            "fingerprint_sha256": made.fingerprint_sha256,
            "not_after": made.not_after,
        }
    output([row], as_json=as_json, title="Trusted CA")


@cert_app.command("map")
def map_subject(
    subdomain: str,
    trusted_ca_id: str,
    subject: Annotated[str, typer.Option("--subject", help="RFC 4514 subject DN.")],
    user_id: UserOpt,
    as_json: JsonFlag = False,
) -> None:
    """Map a subject under a trusted CA to a technical user."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        trusted = trust.get_trusted_ca(session, subaccount=s, trusted_ca_id=trusted_ca_id)
        user = identity.get_user(session, user_id=user_id)
        rule = trust.add_mapping_rule(
            session,
            ctx,
            actor=CLI_ACTOR,
            subaccount=s,
            trusted=trusted,
            subject_dn=subject,
            user=user,
        )
        row = {"rule_id": rule.rule_id, "subject_dn": rule.subject_dn, "user_id": user.user_id}
    output([row], as_json=as_json, title="Mapping rule")


@cert_app.command("list")
def list_certificates(
    subdomain: str,
    user_id: Annotated[str | None, typer.Option("--user", help="Only this user's.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the sub-account's certificates."""
    with write() as (session, _):
        s = tenancy.get(session, subdomain=subdomain)
        user = identity.get_user(session, user_id=user_id) if user_id else None
        rows = [
            _row(c, u.user_id)
            for c, u in service.list_certificates(session, subaccount=s, user=user)
        ]
    output(rows, as_json=as_json, title=f"Certificates of {subdomain}")


@cert_app.command("revoke")
def revoke(
    subdomain: str,
    certificate_id: str,
    reason: Annotated[
        RevocationReason, typer.Option(help="RFC 5280 reason, written into the CRL.")
    ] = RevocationReason.unspecified,
    as_json: JsonFlag = False,
) -> None:
    """Revoke a certificate (idempotent)."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        row = service.get(session, subaccount=s, certificate_id=certificate_id)
        done = service.revoke(
            session, ctx, actor=CLI_ACTOR, subaccount=s, certificate=row, reason=reason
        )
        shown = _row(row, service.owner_of(session, row).user_id) | {"changed": done.changed}
    output([shown], as_json=as_json, title="Revoked")
