"""The admin API's documentation, served offline: Swagger UI at ``/api/docs`` and ReDoc at
``/api/redoc``, their assets from the ``fastapi-offline`` package under
``/api/docs/static/`` (no CDN: an installation without internet still has its docs).

The pages get a Content-Security-Policy of their own: scripts only from Ostiary plus the
one inline script that starts Swagger UI (by its hash); inline styles, which ReDoc injects
as it renders; images from Ostiary or ``data:`` URIs (Swagger UI's icons).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from ostiary.api.authn import document_csrf

DOCS_URL = "/api/docs"
REDOC_URL = "/api/redoc"
STATIC_URL = "/api/docs/static"
#: fastapi-offline ships Swagger UI's and ReDoc's bundles (kept current with their releases).
ASSETS = ("fastapi_offline", "static")
SWAGGER_PARAMETERS = {
    # No badge asking validator.swagger.io about the document; keep the Authorize dialog's
    # entries for this tab only (a reload forgets them).
    "validatorUrl": None,
    "persistAuthorization": False,
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _policy(html: str) -> str:
    """The docs pages' Content-Security-Policy: their inline scripts allowed by hash only."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}".rstrip()
        + "; style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:"
        "; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    )


def _page(made: HTMLResponse) -> HTMLResponse:
    html = bytes(made.body).decode()
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": _policy(html),
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def _openapi_with_csrf(app: FastAPI) -> Any:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document (built once), with the session's CSRF requirement added."""
        if app.openapi_schema is None:
            app.openapi_schema = document_csrf(generate())
        return app.openapi_schema

    return openapi


def install(app: FastAPI) -> None:
    """Serve the docs pages and their assets on ``app`` (created with ``docs_url=None``)."""
    assert app.openapi_url is not None
    openapi_url = app.openapi_url
    app.openapi = _openapi_with_csrf(app)  # type: ignore[method-assign]
    app.mount(STATIC_URL, StaticFiles(packages=[ASSETS]), name="api-docs-static")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return _page(
            get_swagger_ui_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} API",
                swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
                swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
                oauth2_redirect_url=None,
                swagger_ui_parameters=SWAGGER_PARAMETERS,
            )
        )

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return _page(
            get_redoc_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} API",
                redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
                with_google_fonts=False,
            )
        )
