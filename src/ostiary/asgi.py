"""The entry point uvicorn workers import: settings come from the environment."""

from __future__ import annotations

import gc

from fastapi import FastAPI

from ostiary.app import create_app
from ostiary.logs import configure
from ostiary.memory import return_large_buffers
from ostiary.settings import Settings


def app_from_env() -> FastAPI:
    """Build the app from ``OSTIARY_*`` variables (used by ``ostiary serve``).

    Everything built up to here (modules, the app, its routes and schemas: ~140k objects)
    lives as long as the process, so it is moved out of the cyclic garbage collector's
    reach. Before, each full collection walked all of it and stopped the event loop for
    ~100 ms about once a second under load: the runtime endpoint's p99 (see
    benchmarks/README.md). Freed argon2 buffers go back to the system (``ostiary.memory``).
    """
    settings = Settings()
    configure(settings.log_level)
    app = create_app(settings)
    gc.collect()
    gc.freeze()
    return_large_buffers()
    return app
