"""Console pages under a sub-account's *Security → Certificates* (contract C6): the CA with
its CRL and rotation, technical users' certificates (from a CSR, a generated key, or an
external upload) with revocation. They mirror ``ostiary.api.certificates``: the same service
call and the same permission for every action. A generated key's PKCS#12 bundle and
passphrase appear only in the answer to the POST that made them (no-store), never in a
cookie, a URL or a log. Trusted CAs and mapping rules are in ``trust_views``."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from ostiary.access.permissions import Permission
from ostiary.api.deps import context
from ostiary.certificates import authority, issuing, service, trust
from ostiary.certificates.issuing import GeneratedCertificate
from ostiary.certificates.models import CertificateAuthority, RevocationReason
from ostiary.console.guard import authorized, principal, problem, signed_in
from ostiary.console.web import Viewer, check_csrf, redirect, render
from ostiary.context import AppContext
from ostiary.errors import InvalidInput, NotFound, OstiaryError, PermissionDenied
from ostiary.identity import service as identity
from ostiary.identity import technical
from ostiary.identity.models import User, UserStatus
from ostiary.tenancy.models import Subaccount

router = APIRouter(
    prefix="/console/subaccounts/{subdomain}/security/certificates", include_in_schema=False
)
Ctx = Annotated[AppContext, Depends(context)]
Field = Annotated[str, Form(max_length=2000)]
#: Form cap well above the API's PEM limit, so a longer paste gets the inline message below.
PemField = Annotated[str, Form(max_length=262_144)]
MAX_PEM = 65536
#: How many technical users the forms' select offers; the user-ID field takes any.
CHOICES = 200
REASONS = {
    RevocationReason.unspecified: "Unspecified",
    RevocationReason.key_compromise: "Key compromise",
    RevocationReason.affiliation_changed: "Affiliation changed",
    RevocationReason.superseded: "Superseded",
    RevocationReason.cessation_of_operation: "Cessation of operation",
    RevocationReason.privilege_withdrawn: "Privilege withdrawn",
}
#: What an untouched form shows (a failed one shows what was typed).
BLANK_FORM = dict.fromkeys(("technical_user", "user_id", "pem", "description", "subject_dn"), "")


def url(subdomain: str, tail: str = "") -> str:
    """A Security → Certificates URL of the sub-account."""
    return f"/console/subaccounts/{quote(subdomain)}/security/certificates{tail}"


@dataclass(frozen=True)
class Failed:
    """A form that failed: which one, why, and what was typed (shown again)."""

    form: str
    error: OstiaryError
    values: dict[str, str]


def pem_text(value: str, field: str, what: str) -> str:
    """A pasted PEM within the API's limit."""
    if not value.strip():
        raise InvalidInput(f"{field} is empty: paste the {what} in PEM")
    if len(value) > MAX_PEM:
        raise InvalidInput(f"{field} is longer than {MAX_PEM} characters")
    return value


def validity(value: str) -> int:
    """Days from the form (default 365); the range is the service's check."""
    if not value.strip():
        return issuing.DEFAULT_VALIDITY_DAYS
    try:
        return int(value.strip())
    except ValueError as exc:
        lo, hi = issuing.MIN_VALIDITY_DAYS, issuing.MAX_VALIDITY_DAYS
        raise InvalidInput(f"validity_days must be between {lo} and {hi}") from exc


def chosen_user(session: Session, technical_user: str, user_id: str) -> User:
    """The technical user a form names: a typed user ID wins over the select."""
    picked = user_id.strip() or technical_user.strip()
    if not picked:
        raise InvalidInput("choose the technical user")
    return identity.get_user(session, user_id=picked)


def choices(session: Session, subaccount: Subaccount) -> list[User]:
    """Active technical users of the sub-account, for the forms' select."""
    rows = technical.inventory(session, subaccount=subaccount, limit=CHOICES)
    return [r.user for r in rows if r.user.status is UserStatus.active]


# ---------------------------------------------------------------- the page


def certificates_page(
    request: Request,
    ctx: AppContext,
    seen: Viewer,
    subdomain: str,
    *,
    failed: Failed | None = None,
) -> Response:
    """The whole page; after a failed form, that form shows its error and values again."""
    now = ctx.clock.now()
    try:
        # As GET …/ca: reading creates the CA at the first use, so the write sessions.
        with authorized(ctx, seen, subdomain, Permission.credentials_read, write=True) as here:
            actor = principal(seen).user_id
            active = authority.ensure_ca(here.session, ctx, actor=actor, subaccount=here.subaccount)
            cas = authority.authorities(here.session, subaccount=here.subaccount)
            rows = service.list_certificates(here.session, subaccount=here.subaccount)
            trusted = trust.list_trusted_cas(here.session, subaccount=here.subaccount)
            rules = trust.list_mapping_rules(here.session, subaccount=here.subaccount)
            writable = here.may(Permission.credentials_write)
            users = choices(here.session, here.subaccount) if writable else []
            crl = {c.id: authority.crl_url(ctx, here.subaccount, c) for c in cas}
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return render(
        request,
        ctx,
        seen,
        "subaccounts/certificates.html",
        status=failed.error.status_code if failed else 200,
        failed=failed,
        subaccount=here.subaccount,
        active=active,
        others=[c for c in cas if c.id != active.id and authority.still_trusted(c, at=now)],
        crl=crl,
        rows=rows,
        expired={c.id for c, _ in rows if c.not_after <= now},
        trusted=trusted,
        rules=rules,
        writable=writable,
        choices=users,
        blank=BLANK_FORM,
        max_days=issuing.MAX_VALIDITY_DAYS,
        section="certificates",
    )


@router.get("")
def certificates(request: Request, ctx: Ctx, subdomain: str) -> Response:
    """The CA, the certificates, trusted CAs and mapping rules, and the forms."""
    seen = signed_in(request, ctx)
    return certificates_page(request, ctx, seen, subdomain)


def _download(body: str, filename: str, media_type: str = "application/x-pem-file") -> Response:
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(body, media_type=media_type, headers=headers)


@router.get("/ca.pem")
def ca_pem(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    ca: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """A CA certificate of the sub-account (the active one by default) as a PEM file."""
    seen = signed_in(request, ctx)
    try:
        with authorized(ctx, seen, subdomain, Permission.credentials_read, write=True) as here:
            if ca:
                cas = authority.authorities(here.session, subaccount=here.subaccount)
                found: CertificateAuthority | None = next(
                    (c for c in cas if c.fingerprint_sha256 == ca.lower()), None
                )
                if found is None:
                    raise NotFound(f"no such CA in {here.subaccount.subdomain}")
            else:
                found = authority.ensure_ca(
                    here.session, ctx, actor=principal(seen).user_id, subaccount=here.subaccount
                )
            body = found.certificate_pem
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return _download(body, f"{subdomain}-ca.pem")


@router.get("/ca/rotate")
def confirm_rotation(request: Request, ctx: Ctx, subdomain: str) -> Response:
    """Ask before rotating: what happens to the old CA and its certificates."""
    seen = signed_in(request, ctx)
    try:
        with authorized(ctx, seen, subdomain, Permission.credentials_write) as here:
            active = authority.active_ca(here.session, subaccount=here.subaccount)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return render(
        request,
        ctx,
        seen,
        "subaccounts/certificates_confirm.html",
        subaccount=here.subaccount,
        confirm="rotate",
        active=active,
        section="certificates",
    )


@router.post("/ca/rotate")
def rotate(request: Request, ctx: Ctx, subdomain: str, csrf_token: Field = "") -> Response:
    """A new active CA; the old one vouches until the last certificate it issued expires."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.credentials_write, write=True) as here:
            authority.rotate_ca(
                here.session, ctx, actor=principal(seen).user_id, subaccount=here.subaccount
            )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return redirect(ctx, url(subdomain), flash="ca_rotated")


# ---------------------------------------------------------------- new certificates


@router.post("/csr")
def sign_csr(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    csrf_token: Field = "",
    technical_user: Field = "",
    user_id: Field = "",
    validity_days: Field = "",
    pem: PemField = "",
) -> Response:
    """Our CA signs the pasted CSR for the technical user."""
    form = {"technical_user": technical_user, "user_id": user_id, "validity_days": validity_days}
    return _create(request, ctx, subdomain, "csr", csrf_token, {**form, "pem": pem})


@router.post("/generate")
def generate(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    csrf_token: Field = "",
    technical_user: Field = "",
    user_id: Field = "",
    validity_days: Field = "",
) -> Response:
    """Generate a key and certificate; the PKCS#12 bundle and passphrase are on this answer."""
    form = {"technical_user": technical_user, "user_id": user_id, "validity_days": validity_days}
    return _create(request, ctx, subdomain, "generate", csrf_token, {**form, "pem": ""})


@router.post("/external")
def upload_external(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    csrf_token: Field = "",
    technical_user: Field = "",
    user_id: Field = "",
    pem: PemField = "",
) -> Response:
    """Pin an external certificate (self-signed allowed) by its SHA-256 fingerprint."""
    form = {"technical_user": technical_user, "user_id": user_id, "validity_days": ""}
    return _create(request, ctx, subdomain, "external", csrf_token, {**form, "pem": pem})


def _create(
    request: Request,
    ctx: AppContext,
    subdomain: str,
    kind: str,
    csrf_token: str,
    values: dict[str, str],
) -> Response:
    """Make one certificate of ``kind`` (``csr``, ``generate``, ``external``) from the form."""
    seen = signed_in(request, ctx)
    pem, validity_days = values["pem"], values["validity_days"]
    generated: GeneratedCertificate | None = None
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.credentials_write, write=True) as here:
            user = chosen_user(here.session, values["technical_user"], values["user_id"])
            args: dict[str, Any] = {
                "actor": principal(seen).user_id,
                "subaccount": here.subaccount,
                "user": user,
            }
            if kind == "csr":
                csr = pem_text(pem, "csr_pem", "certificate signing request")
                days = validity(validity_days)
                made = issuing.sign_csr(
                    here.session, ctx, **args, csr_pem=csr, validity_days=days
                ).certificate
            elif kind == "generate":
                generated = issuing.generate(
                    here.session, ctx, **args, validity_days=validity(validity_days)
                )
                made = generated.certificate
            else:
                cert = pem_text(pem, "certificate_pem", "client certificate")
                made = service.upload_external(here.session, ctx, **args, certificate_pem=cert)
            made_id, owner = made.certificate_id, user.user_id
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        return certificates_page(request, ctx, seen, subdomain, failed=Failed(kind, exc, values))
    if generated is None:
        flash = "certificate_issued" if kind == "csr" else "certificate_pinned"
        return redirect(ctx, url(subdomain, f"#{made_id}"), flash=flash)
    # Rendered straight into the POST answer (no-store): never in a cookie, URL or log.
    return render(
        request,
        ctx,
        seen,
        "subaccounts/certificates_generated.html",
        subaccount=here.subaccount,
        certificate=made,
        owner=owner,
        passphrase=generated.passphrase,
        bundle=base64.b64encode(generated.pkcs12).decode(),
        filename=f"{owner}-{made_id}.p12",
        section="certificates",
    )


# ---------------------------------------------------------------- one certificate


@router.get("/{certificate_id}/chain.pem")
def chain_pem(request: Request, ctx: Ctx, subdomain: str, certificate_id: str) -> Response:
    """A certificate followed by the CA that issued it, as a PEM file."""
    seen = signed_in(request, ctx)
    try:
        with authorized(ctx, seen, subdomain, Permission.credentials_read) as here:
            row = service.get(
                here.session, subaccount=here.subaccount, certificate_id=certificate_id
            )
            body = issuing.chain_pem(here.session, row)
            name = row.certificate_id
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return _download(body, f"{name}.pem")


def _revoke_page(
    request: Request, ctx: AppContext, seen: Viewer, subdomain: str, certificate_id: str
) -> Response:
    try:
        with authorized(ctx, seen, subdomain, Permission.credentials_write) as here:
            row = service.get(
                here.session, subaccount=here.subaccount, certificate_id=certificate_id
            )
            owner = service.owner_of(here.session, row)
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return render(
        request,
        ctx,
        seen,
        "subaccounts/certificates_confirm.html",
        subaccount=here.subaccount,
        confirm="revoke",
        certificate=row,
        owner=owner,
        reasons=REASONS,
        section="certificates",
    )


@router.get("/{certificate_id}/revoke")
def confirm_revocation(request: Request, ctx: Ctx, subdomain: str, certificate_id: str) -> Response:
    """Ask before revoking, with the RFC 5280 reason the CRL will carry."""
    seen = signed_in(request, ctx)
    return _revoke_page(request, ctx, seen, subdomain, certificate_id)


@router.post("/{certificate_id}/revoke")
def revoke(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    certificate_id: str,
    csrf_token: Field = "",
    reason: Field = "unspecified",
) -> Response:
    """Revoke the certificate: refused on every worker within a second, listed in the CRL."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        try:
            why = RevocationReason(reason)
        except ValueError as exc:
            raise InvalidInput(f"unknown revocation reason {reason[:40]!r}") from exc
        with authorized(ctx, seen, subdomain, Permission.credentials_write, write=True) as here:
            row = service.get(
                here.session, subaccount=here.subaccount, certificate_id=certificate_id
            )
            done = service.revoke(
                here.session,
                ctx,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                certificate=row,
                reason=why,
            )
            target = row.certificate_id
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    flash = "certificate_revoked" if done.changed else "certificate_revoked_already"
    return redirect(ctx, url(subdomain, f"#{target}"), flash=flash)
