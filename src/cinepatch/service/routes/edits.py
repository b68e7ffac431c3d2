"""Edits in the Videos API's style: OpenAI's extensions and edits, and cinepatch's loops,
re-cuts, blends and storyboards. Each body is typed (:mod:`cinepatch.service.schemas`) and its
edit parameters become a frozen dataclass before any job exists."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from cinepatch.editing.params import RecutParams
from cinepatch.service.deps import Caller, Deps, caller, get_deps, new_id
from cinepatch.service.http import Body, invalid, parse, read_body
from cinepatch.service.openapi import body, errors
from cinepatch.service.routes.videos import VIDEO
from cinepatch.service.schemas import (
    BlendVideos,
    EditBody,
    EditVideo,
    ExtendVideo,
    LoopVideo,
    RecutVideo,
    StoryboardVideo,
)
from cinepatch.service.store import Job

__all__ = ["router"]

router = APIRouter(prefix="/v1/videos", tags=["edits"])
REPLIES = {**VIDEO, **errors(400, 403, 404, 409, 413, 429)}


async def _source(
    deps: Deps, received: Body, fields: EditBody, who: Caller, video_id: str
) -> tuple[dict[str, Any], Job | None]:
    """An edit's source: a reference to a completed video, or an uploaded file."""
    upload = received.files.get("video")
    if upload is not None:
        if fields.video is not None:
            raise invalid("video", "'video' is either a reference or an upload, not both")
        path = await deps.save_upload(upload, video_id, param="video", kind="video")
        return {"path": str(path)}, None
    if fields.video is None:
        raise invalid("video", "'video' is required: a video reference {\"id\": …} or an upload",
                      code="missing_required_parameter")
    return {"video_id": fields.video.id}, deps.source_of(fields.video.id, who, param="video")


async def _edit(request: Request, who: Caller, deps: Deps, model: type[EditBody], *, edit: str, kind: str) -> JSONResponse:
    received = await read_body(request, deps.config.max_upload_bytes)
    fields = parse(model, received.fields)
    params = fields.params()  # refused here, before any upload is kept or job made
    prompt = deps.prompt(fields.prompt, required=edit not in ("loop", "recut"))
    video_id = new_id()
    ref, source = await _source(deps, received, fields, who, video_id)
    if source is not None:
        spec, seconds = deps.from_source(source, fields)
        model_name, size = source.model, source.size
    else:
        if not prompt:
            raise invalid("prompt", "'prompt' is required when the video is uploaded", code="missing_required_parameter")
        seconds = deps.seconds(None)
        spec, model_name, size = deps.base_spec(fields, prompt, seconds)
    if fields.seconds is not None or edit == "extend":  # an extension's seconds: what it adds
        seconds = spec["seconds"] = deps.seconds(fields.seconds)
    if isinstance(params, RecutParams) and source is not None:
        _within(params, source)
    prompt = prompt or (source.prompt if source is not None else "")
    spec.update(prompt=prompt, edit=edit, sources=[ref], params=params.to_dict() if params is not None else {})
    job = {"id": video_id, "model": model_name, "seconds": f"{seconds:g}", "size": size, "prompt": prompt,
           "kind": kind, "spec": spec, "owner": who.owner,
           "remixed_from_video_id": source.id if source is not None and kind == "edit" else None}
    return JSONResponse(await deps.submit(who, job))


def _within(params: RecutParams, source: Job) -> None:
    """Re-cut ranges inside the source, checked now rather than as a failed job later."""
    length = float((source.result or {}).get("seconds") or source.spec.get("seconds") or source.seconds)
    for start, end in params.ranges:
        if end > length + 1e-9:
            raise invalid("ranges", f"range [{start:g}, {end:g}] ends after the source's {length:g} s")


@router.post("/extensions", responses=REPLIES, openapi_extra=body(ExtendVideo, files=("video",)))
async def extend_video(request: Request, who: Caller = Depends(caller), deps: Deps = Depends(get_deps)) -> JSONResponse:
    return await _edit(request, who, deps, ExtendVideo, edit="extend", kind="extend")


@router.post("/edits", responses=REPLIES, openapi_extra=body(EditVideo, files=("video",)))
async def edit_video(request: Request, who: Caller = Depends(caller), deps: Deps = Depends(get_deps)) -> JSONResponse:
    return await _edit(request, who, deps, EditVideo, edit="remix", kind="edit")


@router.post("/loops", responses=REPLIES, openapi_extra=body(LoopVideo, files=("video",)))
async def loop_video(request: Request, who: Caller = Depends(caller), deps: Deps = Depends(get_deps)) -> JSONResponse:
    return await _edit(request, who, deps, LoopVideo, edit="loop", kind="loop")


@router.post("/recuts", responses=REPLIES, openapi_extra=body(RecutVideo, files=("video",)))
async def recut_video(request: Request, who: Caller = Depends(caller), deps: Deps = Depends(get_deps)) -> JSONResponse:
    return await _edit(request, who, deps, RecutVideo, edit="recut", kind="recut")


@router.post("/blends", responses=REPLIES, openapi_extra=body(BlendVideos, form=False))
async def blend_videos(request: Request, who: Caller = Depends(caller), deps: Deps = Depends(get_deps)) -> JSONResponse:
    fields = parse(BlendVideos, (await read_body(request, deps.config.max_upload_bytes)).fields)
    params = fields.params()
    sources = [deps.source_of(ref.id, who, param="videos") for ref in fields.videos]
    prompt = deps.prompt(fields.prompt, required=False) or f"{sources[0].prompt}, becoming {sources[1].prompt}"
    spec, seconds = deps.from_source(sources[0], fields)
    if fields.seconds is not None:
        seconds = spec["seconds"] = deps.seconds(fields.seconds)
    used = sources[:1] if params.mode == "mix" else sources  # a mix keeps the first's layout
    spec.update(prompt=prompt, edit="blend", sources=[{"video_id": s.id} for s in used], params=params.to_dict())
    job = {"id": new_id(), "model": sources[0].model, "seconds": f"{seconds:g}", "size": sources[0].size,
           "prompt": prompt, "kind": "blend", "remixed_from_video_id": None, "spec": spec, "owner": who.owner}
    return JSONResponse(await deps.submit(who, job))


@router.post("/storyboards", responses=REPLIES, openapi_extra=body(StoryboardVideo, form=False))
async def storyboard_video(request: Request, who: Caller = Depends(caller), deps: Deps = Depends(get_deps)) -> JSONResponse:
    fields = parse(StoryboardVideo, (await read_body(request, deps.config.max_upload_bytes)).fields)
    board, start = [], 0.0
    for i, card in enumerate(fields.cards):
        text = deps.prompt(card.prompt, param=f"cards[{i}].prompt")
        length = deps.seconds(card.seconds if card.seconds is not None else 2.0, param=f"cards[{i}].seconds")
        board.append({"at": start, "prompt": text, "seconds": length})  # unrounded: cards abut exactly
        start += length
    seconds = deps.seconds(start)  # the whole board must fit the duration limit
    prompt = deps.prompt(fields.prompt, required=False) or "; then ".join(c["prompt"] for c in board)
    spec, model, size = deps.base_spec(fields, prompt, seconds)
    spec.update(edit="storyboard", params={"cards": board})
    job = {"id": new_id(), "model": model, "seconds": f"{seconds:g}", "size": size, "prompt": prompt,
           "kind": "storyboard", "remixed_from_video_id": None, "spec": spec, "owner": who.owner}
    return JSONResponse(await deps.submit(who, job))
