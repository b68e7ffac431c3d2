"""The HTTP API: OpenAI's Videos API, cinepatch's extra edits, and the web studio page.

Handlers only validate, read and write the job store (writes in the thread pool — never
blocking the event loop); worker processes do the generating. The parts:

::

    api.py       create_app: the service's parts, middleware, routers
    http.py      bodies (JSON, urlencoded, multipart), OpenAI-shaped errors, middleware
    schemas.py   typed request bodies (pydantic), strict at the edge
    deps.py      Deps (config, store, supervisor) and the caller's key, as dependencies
    openapi.py   request bodies, error replies and the bearer scheme in /openapi.json
    routes/      videos.py (OpenAI's API), edits.py (cinepatch's edits), studio.py (the page)
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

from anyio import to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cinepatch.errors import APIError
from cinepatch.service.config import ServiceConfig
from cinepatch.service.deps import Deps
from cinepatch.service.generator import load_callable, preset_names
from cinepatch.service.http import LimitBody, SameOrigin, SecurityHeaders, ServerTiming, install_error_handlers
from cinepatch.service.openapi import install_openapi
from cinepatch.service.routes import edits, studio, videos
from cinepatch.service.store import open_store
from cinepatch.service.supervisor import Supervisor

__all__ = ["create_app", "APIError"]


def create_app(config: ServiceConfig, *, supervise: bool = True) -> FastAPI:
    """The ASGI app. ``supervise`` starts (and stops) the worker processes with it."""
    if not config.presets:
        config = dataclasses.replace(config, presets=preset_names(config.studio_dirs[0]))
    store = open_store(config)
    deps = Deps(config=config, store=store, supervisor=Supervisor(config, store) if supervise else None,
                prompt_check=load_callable(config.prompt_check) if config.prompt_check else None)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if deps.supervisor is not None:
            await to_thread.run_sync(deps.supervisor.start)
        try:
            yield
        finally:
            if deps.supervisor is not None:
                await to_thread.run_sync(deps.supervisor.stop)

    # /docs would load Swagger UI from a CDN (and run inline script under our CSP): the
    # machine-readable document stays at /openapi.json.
    app = FastAPI(title="cinepatch", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.deps = deps
    app.state.store = store  # kept for callers that reach the store through the app
    app.state.supervisor = deps.supervisor
    app.state.config = config
    install_error_handlers(app)
    for router in (videos.router, edits.router, studio.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=studio.STATIC), name="static")
    install_openapi(app, config)
    app.add_middleware(LimitBody, limit=config.max_upload_bytes + 1024 * 1024)
    app.add_middleware(SameOrigin)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(ServerTiming)
    return app
