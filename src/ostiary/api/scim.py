"""The SCIM 2.0 edge at ``/scim/v2`` (RFC 7644): bearer SCIM tokens, JSON in and out, and
every error as an RFC 7644 §3.12 ``Error`` resource, turned so in this one place.

A Starlette application of its own, mounted by ``create_app``: SCIM's wire format for
errors differs from the admin API's ``{error, detail}``, and its routes are not part of
the admin API's OpenAPI document.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from scim2_models import Context
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ostiary.api.authn import client_address
from ostiary.context import AppContext
from ostiary.db import purge_freed_space, store_wide, transaction
from ostiary.errors import OstiaryError
from ostiary.scim import groups, rfc7644_query, technical_users, tokens, users
from ostiary.scim import rfc7643_schema as schema
from ostiary.scim.errors import InvalidSyntax, ResourceNotFound, ScimError, TooLarge
from ostiary.scim.rfc7644_patch import ResourceSpec

log = logging.getLogger("ostiary.scim")

MEDIA_TYPE = "application/scim+json"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
#: Largest SCIM request body read (a group with many members fits comfortably).
MAX_BODY = 1024 * 1024

Handler = Callable[[Request, AppContext, str], Awaitable[Response]]


class ScimJSON(JSONResponse):
    """A SCIM answer: ``application/scim+json`` (RFC 7644 §3.1)."""

    media_type = MEDIA_TYPE


def error(
    status: int, detail: str, scim_type: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """An ``Error`` resource (RFC 7644 §3.12); ``status`` is a string there."""
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return ScimJSON(body, status_code=status, headers=headers)


class _Unauthorized(Exception):
    pass


def _base(request: Request) -> str:
    ctx: AppContext = request.app.state.ctx
    return ctx.settings.public_url.rstrip("/") + "/scim/v2"


def _authenticate(ctx: AppContext, header: str, address: str) -> str:
    """The audit actor of the SCIM token in ``header``; raises ``_Unauthorized``.

    Read in a read transaction; the last use is written in a write transaction only when
    it is due (once a minute), so SCIM reads do not queue behind SQLite's writer."""
    if header[:7].lower() != "bearer ":
        raise _Unauthorized
    now = ctx.clock.now()
    with transaction(ctx.read_sessions) as session:
        row = tokens.authenticate(session, ctx, token=header[7:].strip())
        if row is None:
            raise _Unauthorized
        token_id, due = row.token_id, tokens.is_use_due(row, now=now)
    if due:
        with transaction(ctx.sessions) as session:
            tokens.note_use(session, token_id=token_id, address=address, now=now)
    return f"scim:{token_id}"


async def _body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise TooLarge(f"the request body is larger than {MAX_BODY} bytes")
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidSyntax("the body is not JSON") from None


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap ``handler`` with authentication and the one translation of errors."""

    async def route(request: Request) -> Response:
        ctx: AppContext = request.app.state.ctx
        try:
            actor = await anyio.to_thread.run_sync(
                _authenticate,
                ctx,
                request.headers.get("authorization", ""),
                client_address(request),
            )
            return await handler(request, ctx, actor)
        except _Unauthorized:
            return error(
                401,
                "a valid SCIM token is required (Authorization: Bearer)",
                headers={"WWW-Authenticate": 'Bearer realm="ostiary-scim"'},
            )
        except ScimError as exc:
            return error(exc.status, exc.detail, exc.scim_type)
        except OstiaryError as exc:
            return error(exc.status_code, exc.detail)
        except (DBAPIError, PoolTimeoutError) as exc:
            if not store_wide(exc):
                log.exception("unexpected database error on %s", request.url.path)
                return error(500, "an unexpected error occurred")
            return error(
                503, "the database cannot be reached; try again later", headers={"Retry-After": "1"}
            )

    return route


def _headers(resource: dict[str, Any]) -> dict[str, str]:
    meta = resource.get("meta") or {}
    found = {"ETag": meta["version"]} if "version" in meta else {}
    if "location" in meta:
        found["Location"] = meta["location"]
    return found


# ---------------------------------------------------------------- discovery (RFC 7644 §4)


def _dump(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    return dumped


async def service_provider_config(request: Request, ctx: AppContext, actor: str) -> Response:
    """``GET /ServiceProviderConfig``."""
    base = _base(request)
    config = _dump(schema.service_provider_config())
    config["meta"] = {
        "resourceType": "ServiceProviderConfig",
        "location": f"{base}/ServiceProviderConfig",
    }
    return ScimJSON(config)


def _discovery_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [rfc7644_query.LIST_RESPONSE],
        "totalResults": len(items),
        "startIndex": 1,
        "itemsPerPage": len(items),
        "Resources": items,
    }


def _resource_types(base: str) -> list[dict[str, Any]]:
    found = []
    for item in schema.resource_types(groups=True):
        dumped = _dump(item)
        dumped["meta"] = {
            "resourceType": "ResourceType",
            "location": f"{base}/ResourceTypes/{item.id}",
        }
        found.append(dumped)
    return found


def _schemas(base: str) -> list[dict[str, Any]]:
    found = []
    for item in schema.schemas(groups=True):
        dumped = _dump(item)
        dumped["meta"] = {"resourceType": "Schema", "location": f"{base}/Schemas/{item.id}"}
        found.append(dumped)
    return found


async def resource_types(request: Request, ctx: AppContext, actor: str) -> Response:
    """``GET /ResourceTypes`` and ``GET /ResourceTypes/{id}``."""
    items = _resource_types(_base(request))
    wanted = request.path_params.get("id")
    if wanted is None:
        return ScimJSON(_discovery_list(items))
    for item in items:
        if item["id"] == wanted:
            return ScimJSON(item)
    raise ResourceNotFound(f"no ResourceType {wanted}")


async def schemas(request: Request, ctx: AppContext, actor: str) -> Response:
    """``GET /Schemas`` and ``GET /Schemas/{id}``."""
    items = _schemas(_base(request))
    wanted = request.path_params.get("id")
    if wanted is None:
        return ScimJSON(_discovery_list(items))
    for item in items:
        if item["id"] == wanted:
            return ScimJSON(item)
    raise ResourceNotFound(f"no Schema {wanted}")


# ------------------------------------------------- Users, Groups, TechnicalUsers (§3)


def _read(ctx: AppContext, work: Callable[[Any], Any]) -> Any:
    with transaction(ctx.read_sessions) as session:
        return work(session)


def _write(ctx: AppContext, work: Callable[[Any], Any]) -> Any:
    with transaction(ctx.sessions) as session:
        return work(session)


def _one_user(session: Any, scim_id: str, base: str) -> dict[str, Any]:
    user, link = users.find(session, scim_id=scim_id)
    return users.shown(session, user, link, base=base)


def _one_group(session: Any, scim_id: str, base: str) -> dict[str, Any]:
    return groups.representation(session, groups.find(session, scim_id=scim_id), base=base)


@dataclass(frozen=True)
class Kind:
    """One resource type's service functions, so all resource types share their handlers.

    A read-only type has no write functions, and ``read_only`` says why writes are refused."""

    spec: ResourceSpec
    listing: Callable[..., list[dict[str, Any]]]
    one: Callable[[Any, str, str], dict[str, Any]]
    create: Callable[..., dict[str, Any]] | None = None
    replace: Callable[..., dict[str, Any]] | None = None
    patch: Callable[..., dict[str, Any]] | None = None
    delete: Callable[..., None] | None = None
    read_only: str | None = None


USERS = Kind(
    users.SPEC, users.listing, _one_user, users.create, users.replace, users.patch, users.delete
)
GROUPS = Kind(
    groups.SPEC,
    groups.listing,
    _one_group,
    groups.create,
    groups.replace,
    groups.patch,
    groups.delete,
)
TECHNICAL_USERS = Kind(
    technical_users.SPEC,
    technical_users.listing,
    technical_users.one,
    read_only=technical_users.READ_ONLY,
)


def _resource(
    kind: Kind, resource: dict[str, Any], request: Request, status: int = 200
) -> Response:
    query = rfc7644_query.parse(dict(request.query_params), max_results=schema.MAX_RESULTS)
    shown = rfc7644_query.project(
        resource, kind.spec, attributes=query.attributes, excluded=query.excluded
    )
    return ScimJSON(shown, status_code=status, headers=_headers(resource))


def handlers(kind: Kind) -> tuple[dict[str, Handler], dict[str, Handler]]:
    """The collection's handlers (list, create) and one resource's (get, put, patch, delete)."""

    async def listing(request: Request, ctx: AppContext, actor: str) -> Response:
        """``GET /{type}`` and ``POST /{type}/.search`` (RFC 7644 §3.4.2, §3.4.3)."""
        if request.method == "POST":
            params = await _body(request)
            if not isinstance(params, dict):
                raise InvalidSyntax("a search is a SearchRequest object")
        else:
            params = dict(request.query_params)
        query = rfc7644_query.parse(params, max_results=schema.MAX_RESULTS)
        base = _base(request)
        found = await anyio.to_thread.run_sync(
            _read, ctx, lambda session: kind.listing(session, base=base)
        )
        return ScimJSON(rfc7644_query.answer(found, kind.spec, query))

    async def get(request: Request, ctx: AppContext, actor: str) -> Response:
        """``GET /{type}/{id}`` (``If-None-Match`` answered 304)."""
        base, scim_id = _base(request), request.path_params["id"]
        found = await anyio.to_thread.run_sync(
            _read, ctx, lambda session: kind.one(session, scim_id, base)
        )
        match = request.headers.get("if-none-match")
        if match and found["meta"]["version"] in {t.strip() for t in match.split(",")}:
            return Response(status_code=304, headers=_headers(found))
        return _resource(kind, found, request)

    async def create(request: Request, ctx: AppContext, actor: str) -> Response:
        """``POST /{type}``."""
        assert kind.create is not None
        make = kind.create
        payload, base = await _body(request), _base(request)
        created = await anyio.to_thread.run_sync(
            _write, ctx, lambda s: make(s, ctx, actor=actor, payload=payload, base=base)
        )
        return _resource(kind, created, request, 201)

    async def refuse(request: Request, ctx: AppContext, actor: str) -> Response:
        """A write to a read-only type: 405 with the reason (``/Schemas`` says readOnly)."""
        return error(405, kind.read_only or "read-only", headers={"Allow": "GET"})

    if kind.read_only is not None:
        writes: dict[str, Handler] = dict.fromkeys(["PUT", "PATCH", "DELETE"], refuse)
        return {"GET": listing, "POST": refuse}, {"GET": get, **writes}

    def changing(change: Callable[..., dict[str, Any]] | None) -> Handler:
        assert change is not None

        async def handle(request: Request, ctx: AppContext, actor: str) -> Response:
            """``PUT`` or ``PATCH /{type}/{id}`` (``If-Match`` honoured)."""
            payload, base = await _body(request), _base(request)
            scim_id, if_match = request.path_params["id"], request.headers.get("if-match")
            done = await anyio.to_thread.run_sync(
                _write,
                ctx,
                lambda s: change(
                    s,
                    ctx,
                    actor=actor,
                    scim_id=scim_id,
                    payload=payload,
                    if_match=if_match,
                    base=base,
                ),
            )
            return _resource(kind, done, request)

        return handle

    async def delete(request: Request, ctx: AppContext, actor: str) -> Response:
        """``DELETE /{type}/{id}`` (``If-Match`` honoured)."""
        assert kind.delete is not None
        remove = kind.delete
        base = _base(request)
        scim_id, if_match = request.path_params["id"], request.headers.get("if-match")
        await anyio.to_thread.run_sync(
            _write,
            ctx,
            lambda s: remove(s, ctx, actor=actor, scim_id=scim_id, if_match=if_match, base=base),
        )
        if kind is USERS:  # an erasure: leave no trace of the person in SQLite's free pages
            with contextlib.suppress(OperationalError):
                await anyio.to_thread.run_sync(purge_freed_space, ctx.engine)
        return Response(status_code=204)

    one = {
        "GET": get,
        "PUT": changing(kind.replace),
        "PATCH": changing(kind.patch),
        "DELETE": delete,
    }
    return {"GET": listing, "POST": create}, one


async def search_all(request: Request, ctx: AppContext, actor: str) -> Response:
    """``POST /.search`` (RFC 7644 §3.4.3): Users, Groups and TechnicalUsers in one list."""
    params = await _body(request)
    if not isinstance(params, dict):
        raise InvalidSyntax("a search is a SearchRequest object")
    query = rfc7644_query.parse(params, max_results=schema.MAX_RESULTS)
    base = _base(request)

    def work(session: Any) -> dict[str, Any]:
        return rfc7644_query.answer_across(
            [
                (users.listing(session, base=base), users.SPEC),
                (groups.listing(session, base=base), groups.SPEC),
                (technical_users.listing(session, base=base), technical_users.SPEC),
            ],
            query,
        )

    return ScimJSON(await anyio.to_thread.run_sync(_read, ctx, work))


async def not_found(request: Request, ctx: AppContext, actor: str) -> Response:
    """Anything else under ``/scim/v2``: a SCIM 404."""
    raise ResourceNotFound(f"no SCIM endpoint {request.url.path}")


def _method_router(table: dict[str, Handler]) -> Handler:
    async def pick(request: Request, ctx: AppContext, actor: str) -> Response:
        handler = table.get(request.method)
        if handler is None:
            allowed = ", ".join(sorted(table))
            return error(
                405, f"{request.method} is not allowed here ({allowed})", headers={"Allow": allowed}
            )
        return await handler(request, ctx, actor)

    return pick


_ALL = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def app(ctx: AppContext) -> Starlette:
    """The SCIM application, to mount at ``/scim/v2``."""

    def route(path: str, table: dict[str, Handler]) -> Route:
        return Route(path, endpoint(_method_router(table)), methods=_ALL)

    user_list, user_one = handlers(USERS)
    group_list, group_one = handlers(GROUPS)
    technical_list, technical_one = handlers(TECHNICAL_USERS)
    application = Starlette(
        routes=[
            route("/ServiceProviderConfig", {"GET": service_provider_config}),
            route("/ResourceTypes", {"GET": resource_types}),
            route("/ResourceTypes/{id}", {"GET": resource_types}),
            route("/Schemas", {"GET": schemas}),
            route("/Schemas/{id:path}", {"GET": schemas}),
            route("/Users", user_list),
            route("/Users/.search", {"POST": user_list["GET"]}),
            route("/Users/{id}", user_one),
            route("/Groups", group_list),
            route("/Groups/.search", {"POST": group_list["GET"]}),
            route("/Groups/{id}", group_one),
            route("/TechnicalUsers", technical_list),
            route("/TechnicalUsers/.search", {"POST": technical_list["GET"]}),
            route("/TechnicalUsers/{id}", technical_one),
            route("/.search", {"POST": search_all}),
            route("/{rest:path}", dict.fromkeys(_ALL, not_found)),
        ]
    )
    application.state.ctx = ctx
    return application
