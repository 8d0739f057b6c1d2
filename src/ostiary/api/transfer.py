"""Sub-account export and import over the admin API (docs/transfer.md).

Export needs read on the sub-account (what a Viewer holds); import needs what an
Administrator holds there, and creating a missing sub-account needs a platform
administrator, exactly as the manual actions do.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from ostiary.access.permissions import Permission
from ostiary.api.authn import Principal, authenticated
from ostiary.api.deps import authorize, context
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import OstiaryError, PermissionDenied
from ostiary.tenancy.models import Subaccount
from ostiary.transfer import export, models, service

router = APIRouter(prefix="/api/v1/subaccounts/{subdomain}", tags=["sub-account transfer"])
Ctx = Annotated[AppContext, Depends(context)]
Caller = Annotated[Principal, Depends(authenticated)]

#: Everything an export reads; a Viewer holds all of these.
EXPORT_NEEDS = (
    Permission.subaccount_read,
    Permission.roles_read,
    Permission.role_collections_read,
    Permission.flows_read,
    Permission.credentials_read,
    Permission.members_read,
    Permission.assignments_read,
)
#: Everything an import may change; only an Administrator holds all of these.
IMPORT_NEEDS = (
    Permission.subaccount_write,
    Permission.roles_write,
    Permission.role_collections_write,
    Permission.flows_write,
    Permission.credentials_write,
    Permission.members_write,
    Permission.assignments_write,
)


class UnsupportedMediaType(OstiaryError):
    """The import body is not ``application/json``."""

    status_code = 415
    code = "unsupported_media_type"


class ProblemOut(BaseModel):
    """An error: ``invalid_document`` and ``unknown_users`` say why in ``detail``; a bad
    query parameter lists its problems there."""

    error: str
    detail: str | list[dict[str, Any]]


class ChangeOut(BaseModel):
    """One item of the file and what the import does with it."""

    kind: str
    name: str
    action: str
    fields: list[str]


class ImportOut(BaseModel):
    """The diff of an import; with ``dry_run`` nothing was kept."""

    subdomain: str
    dry_run: bool
    counts: dict[str, int]
    changes: list[ChangeOut]


async def json_body(request: Request) -> bytes:
    """The raw body of a request that says it is JSON (415 otherwise)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise UnsupportedMediaType(
            f"the import takes the export file as application/json, not {kind or 'no type'}"
        )
    return await request.body()


@router.get(
    "/export",
    response_model=models.Document,
    responses={200: {"description": "The export document `ostiary.subaccount/1`."}},
)
def export_subaccount(subdomain: str, ctx: Ctx, principal: Caller) -> JSONResponse:
    """The sub-account's configuration as one JSON document (never a secret)."""
    with transaction(ctx.read_sessions) as session:
        subaccount = subaccount_for(session, principal, subdomain, EXPORT_NEEDS)
        document = export.build(session, clock=ctx.clock, subaccount=subaccount)
    return JSONResponse(
        document.model_dump(mode="json"),
        headers={"Content-Disposition": f'attachment; filename="{subdomain}.json"'},
    )


def subaccount_for(
    session: Session, principal: Principal, subdomain: str, needs: tuple[Permission, ...]
) -> Subaccount:
    """The sub-account, if the caller holds every permission in ``needs`` there."""
    subaccount: Subaccount | None = None
    for permission in needs:
        subaccount, _ = authorize(
            session, principal=principal, subdomain=subdomain, permission=permission
        )
    assert subaccount is not None
    return subaccount


_IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Document"}}},
    }
}


@router.post(
    "/import",
    response_model=ImportOut,
    openapi_extra=_IMPORT_BODY,
    responses={
        415: {"model": ProblemOut, "description": "The body is not application/json."},
        422: {"model": ProblemOut, "description": "The file is not a valid export."},
    },
)
def import_subaccount(
    subdomain: str,
    ctx: Ctx,
    principal: Caller,
    raw: Annotated[bytes, Depends(json_body)],
    dry_run: Annotated[bool, Query(description="Show the diff and keep nothing.")] = False,
) -> ImportOut:
    """Import an export file into ``subdomain`` (created if missing): one transaction,
    idempotent, never deleting what the file leaves out."""
    document = models.parse(raw)

    def check(session: Session, target: Subaccount | None) -> None:
        if target is not None:
            subaccount_for(session, principal, subdomain, IMPORT_NEEDS)
        elif not principal.is_platform_admin:
            raise PermissionDenied(
                f"sub-account {subdomain} does not exist; only platform administrators "
                "create sub-accounts",
                reason="import would create a sub-account; not a platform administrator",
                actor=principal.user_id,
                subdomain=subdomain,
            )

    result = service.run(
        ctx.sessions,
        ctx,
        actor=principal.user_id,
        subdomain=subdomain,
        document=document,
        dry_run=dry_run,
        authorize=check,
    )
    return ImportOut(
        subdomain=result.subdomain,
        dry_run=result.dry_run,
        counts=result.counts(),
        changes=[
            ChangeOut(kind=c.kind, name=c.name, action=c.action, fields=list(c.fields))
            for c in result.changes
        ],
    )
