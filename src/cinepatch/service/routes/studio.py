"""The web studio: its page, the options it offers, its cookie login, and the health check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse

from cinepatch.errors import APIError
from cinepatch.service.deps import Caller, Deps, caller, get_deps, run
from cinepatch.service.http import COOKIE, parse, read_body
from cinepatch.service.openapi import body, errors
from cinepatch.service.schemas import StudioLogin

__all__ = ["router", "STATIC"]

router = APIRouter(tags=["studio"])
STATIC = Path(__file__).parents[1] / "static"
SIZES = ("64x64", "112x64", "64x112", "128x128", "256x144", "144x256", "256x256")


@router.get("/v1/studio/options", responses=errors())
def studio_options(who: Caller = Depends(caller), deps: Deps = Depends(get_deps)) -> dict[str, Any]:
    config = deps.config
    return {
        "sizes": [s for s in SIZES if _fits(deps, s)], "size_map": config.size_map,
        "default_size": config.default_size, "max_seconds": config.max_seconds,
        "default_seconds": config.default_seconds, "models": sorted(config.models),
        "default_model": config.default_model, "presets": list(config.presets),
        "max_prompt_chars": config.max_prompt_chars, "owner": who.owner,
    }


def _fits(deps: Deps, size: str) -> bool:
    try:
        deps.size(size)
    except APIError:
        return False
    return True


@router.post("/studio/session", responses=errors(400, 403), openapi_extra=body(StudioLogin))
async def studio_login(request: Request, deps: Deps = Depends(get_deps)) -> JSONResponse:
    secret = parse(StudioLogin, (await read_body(request, 4096)).fields).key.strip()
    key = await run(deps.store.key_for, secret) if secret else None
    if key is None:
        raise APIError(401, "Incorrect API key provided.", param="key", code="invalid_api_key")
    response = JSONResponse({"object": "studio.session", "key_id": key.id, "name": key.name})
    response.set_cookie(COOKIE, secret, httponly=True, samesite="strict", max_age=30 * 86400)
    return response


@router.delete("/studio/session", responses=errors(403))
def studio_logout() -> JSONResponse:
    response = JSONResponse({"object": "studio.session", "deleted": True})
    response.delete_cookie(COOKIE)
    return response


@router.get("/healthz")
def health(deps: Deps = Depends(get_deps)) -> dict[str, Any]:
    """Up or not, and how many workers: nothing about any key's jobs (it needs no key)."""
    return {"ok": True, "workers": deps.supervisor.alive() if deps.supervisor else 0}


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})
