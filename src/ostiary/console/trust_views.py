"""*Security → Certificates*, second half: trusted external CAs and their mapping rules
(subject DN → technical user). The forms are on the certificates page; like the admin API
(``ostiary.api.certificates``) every change needs ``credentials:write`` and calls one
``ostiary.certificates.trust`` function."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from ostiary.access.permissions import Permission
from ostiary.api.deps import context
from ostiary.certificates import trust
from ostiary.console.certificate_views import (
    Failed,
    PemField,
    certificates_page,
    chosen_user,
    pem_text,
    url,
)
from ostiary.console.guard import authorized, principal, problem, signed_in
from ostiary.console.web import check_csrf, redirect
from ostiary.context import AppContext
from ostiary.errors import NotFound, OstiaryError, PermissionDenied

router = APIRouter(
    prefix="/console/subaccounts/{subdomain}/security/certificates/trusted-cas",
    include_in_schema=False,
)
Ctx = Annotated[AppContext, Depends(context)]
Field = Annotated[str, Form(max_length=2000)]


@router.post("")
def add_trusted_ca(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    csrf_token: Field = "",
    pem: PemField = "",
    description: Field = "",
) -> Response:
    """Trust an external CA (the upload must verify by signatures, never by DN text)."""
    seen = signed_in(request, ctx)
    values = {"pem": pem, "description": description}
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.credentials_write, write=True) as here:
            row = trust.add_trusted_ca(
                here.session,
                ctx,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                certificate_pem=pem_text(pem, "certificate_pem", "CA certificate or chain"),
                description=description.strip(),
            )
            made = row.trusted_ca_id
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        failed = Failed("trusted", exc, values)
        return certificates_page(request, ctx, seen, subdomain, failed=failed)
    return redirect(ctx, url(subdomain, f"#{made}"), flash="trusted_ca_added")


@router.post("/{trusted_ca_id}/delete")
def delete_trusted_ca(
    request: Request, ctx: Ctx, subdomain: str, trusted_ca_id: str, csrf_token: Field = ""
) -> Response:
    """Stop trusting a CA; its mapping rules and mapped certificates go with it."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.credentials_write, write=True) as here:
            row = trust.get_trusted_ca(
                here.session, subaccount=here.subaccount, trusted_ca_id=trusted_ca_id
            )
            trust.delete_trusted_ca(
                here.session,
                ctx,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                trusted=row,
            )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return redirect(ctx, url(subdomain, "#trusted-cas"), flash="trusted_ca_deleted")


@router.post("/{trusted_ca_id}/mapping-rules")
def add_mapping_rule(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    trusted_ca_id: str,
    csrf_token: Field = "",
    subject_dn: Field = "",
    technical_user: Field = "",
    user_id: Field = "",
) -> Response:
    """Certificates under this trusted CA with exactly this subject act as the user."""
    seen = signed_in(request, ctx)
    values = {"subject_dn": subject_dn, "technical_user": technical_user, "user_id": user_id}
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.credentials_write, write=True) as here:
            trusted = trust.get_trusted_ca(
                here.session, subaccount=here.subaccount, trusted_ca_id=trusted_ca_id
            )
            trust.add_mapping_rule(
                here.session,
                ctx,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                trusted=trusted,
                subject_dn=subject_dn.strip(),
                user=chosen_user(here.session, technical_user, user_id),
            )
    except PermissionDenied as exc:
        return problem(request, ctx, seen, exc)
    except OstiaryError as exc:
        if isinstance(exc, NotFound) and exc.detail.startswith("no trusted CA"):
            return problem(request, ctx, seen, exc)  # no form to show the error in
        failed = Failed(f"rule-{trusted_ca_id}", exc, values)
        return certificates_page(request, ctx, seen, subdomain, failed=failed)
    return redirect(ctx, url(subdomain, f"#{trusted_ca_id}"), flash="mapping_rule_added")


@router.post("/{trusted_ca_id}/mapping-rules/{rule_id}/delete")
def delete_mapping_rule(
    request: Request,
    ctx: Ctx,
    subdomain: str,
    trusted_ca_id: str,
    rule_id: str,
    csrf_token: Field = "",
) -> Response:
    """Remove a mapping rule: its subject no longer authenticates under that CA."""
    seen = signed_in(request, ctx)
    try:
        check_csrf(seen, csrf_token)
        with authorized(ctx, seen, subdomain, Permission.credentials_write, write=True) as here:
            trusted = trust.get_trusted_ca(
                here.session, subaccount=here.subaccount, trusted_ca_id=trusted_ca_id
            )
            trust.delete_mapping_rule(
                here.session,
                ctx,
                actor=principal(seen).user_id,
                subaccount=here.subaccount,
                rule_id=rule_id,
                trusted=trusted,
            )
    except OstiaryError as exc:
        return problem(request, ctx, seen, exc)
    return redirect(ctx, url(subdomain, f"#{trusted_ca_id}"), flash="mapping_rule_deleted")
