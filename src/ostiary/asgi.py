"""The entry point uvicorn workers import: settings come from the environment."""

from __future__ import annotations

from fastapi import FastAPI

from ostiary.app import create_app
from ostiary.logs import configure
from ostiary.settings import Settings


def app_from_env() -> FastAPI:
    """Build the app from ``OSTIARY_*`` variables (used by ``ostiary serve``)."""
    settings = Settings()
    configure(settings.log_level)
    return create_app(settings)
