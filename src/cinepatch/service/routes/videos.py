"""OpenAI's Videos API: create, list, retrieve, delete, download, remix — and provenance and a
server-sent event stream of one video's progress."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from cinepatch.errors import APIError
from cinepatch.service.deps import TERMINAL, Caller, Deps, caller, get_deps, new_id, video_object
from cinepatch.service.http import invalid, not_found, parse, read_body
from cinepatch.service.openapi import body, errors
from cinepatch.service.schemas import CreateVideo, RemixVideo, VideoList, VideoObject
from cinepatch.service.worker import files_of, provenance_file, write_provenance

__all__ = ["router"]

router = APIRouter(prefix="/v1/videos", tags=["videos"])

VARIANTS = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
VIDEO = {200: {"model": VideoObject, "description": "The video object"}}


@router.post("", responses={**VIDEO, **errors(400, 403, 409, 413, 429)},
             openapi_extra=body(CreateVideo, files=("input_reference",)))
async def create_video(request: Request, who: Caller = Depends(caller), deps: Deps = Depends(get_deps)) -> JSONResponse:
    received = await read_body(request, deps.config.max_upload_bytes)
    if "input_reference" in received.fields:
        raise invalid("input_reference", "'input_reference' must be an uploaded image file (multipart)")
    fields = parse(CreateVideo, received.fields)
    prompt = deps.prompt(fields.prompt)
    seconds = deps.seconds(fields.seconds)
    spec, model, size = deps.base_spec(fields, prompt, seconds)
    video_id = new_id()
    upload = received.files.get("input_reference")
    if upload is not None:
        path = await deps.save_upload(upload, video_id, param="input_reference", kind="image")
        spec.update(edit="image", sources=[{"path": str(path)}])
    job = {"id": video_id, "model": model, "seconds": f"{seconds:g}", "size": size, "prompt": prompt,
           "kind": "create", "remixed_from_video_id": None, "spec": spec, "owner": who.owner}
    return JSONResponse(await deps.submit(who, job))


@router.get("", responses={200: {"model": VideoList, "description": "A page of videos"}, **errors(400)})
async def list_videos(
    after: str | None = Query(None, max_length=64),
    limit: int = Query(20, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
    who: Caller = Depends(caller),
    deps: Deps = Depends(get_deps),
) -> JSONResponse:
    try:
        jobs, more = deps.store.list(who.owner, after=after, limit=limit, order=order)
    except KeyError:
        raise invalid("after", f"after={after!r} names no video of yours") from None
    data = [video_object(j) for j in jobs]
    return JSONResponse({"object": "list", "data": data, "has_more": more,
                         "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})


@router.get("/{video_id}", responses={**VIDEO, **errors(404)})
async def retrieve_video(video_id: str, who: Caller = Depends(caller), deps: Deps = Depends(get_deps)) -> JSONResponse:
    job = deps.owned(video_id, who)
    headers = {"openai-poll-after-ms": str(deps.config.poll_after_ms)} if job.status not in TERMINAL else None
    return JSONResponse(video_object(job), headers=headers)


@router.delete("/{video_id}", responses=errors(403, 404))
def delete_video(video_id: str, who: Caller = Depends(caller), deps: Deps = Depends(get_deps)) -> dict[str, Any]:
    if deps.store.delete(video_id, who.owner) is None:
        raise not_found(video_id)
    shutil.rmtree(deps.config.video_dir(video_id), ignore_errors=True)
    shutil.rmtree(deps.config.upload_dir(video_id), ignore_errors=True)
    return {"id": video_id, "object": "video.deleted", "deleted": True}


def _check_range(header: str | None, size: int) -> None:
    """Range errors in OpenAI's shape (Starlette would answer them in plain text)."""
    if not header:
        return
    try:
        FileResponse._parse_range_header(header, size)
    except MalformedRangeHeader:
        raise invalid("Range", f"Range header {header[:64]!r} is malformed: allowed 'bytes=START-END'") from None
    except RangeNotSatisfiable:
        raise APIError(416, f"Range {header[:64]!r} is outside the file's {size} bytes", param="Range",
                       code="range_not_satisfiable", headers={"Content-Range": f"bytes */{size}"}) from None


@router.get("/{video_id}/content", response_class=FileResponse, responses={
    200: {"content": {t: {} for t in VARIANTS.values()}, "description": "The file"},
    206: {"description": "Part of the file (a Range request)"}, **errors(400, 404, 409, 416)})
def download_content(
    video_id: str, request: Request, variant: Literal["video", "thumbnail", "spritesheet"] = "video",
    who: Caller = Depends(caller), deps: Deps = Depends(get_deps),
) -> FileResponse:
    job = deps.owned(video_id, who)
    if job.status != "completed":
        raise APIError(409, f"video '{video_id}' is {job.status}; its content is available once completed",
                       param="video_id", code="video_not_ready")
    name = files_of(job).get(variant)
    path = deps.config.video_dir(video_id) / name if name else None
    if path is None or not path.is_file():
        raise APIError(404, f"video '{video_id}' has no {variant} file", param="variant", code="not_found")
    _check_range(request.headers.get("range"), path.stat().st_size)
    return FileResponse(path, media_type=VARIANTS[variant], filename=f"{video_id}{Path(name).suffix}",
                        headers={"Cache-Control": "private, max-age=86400"}, content_disposition_type="inline")


@router.post("/{video_id}/remix", responses={**VIDEO, **errors(400, 403, 404, 409, 413, 429)},
             openapi_extra=body(RemixVideo))
async def remix_video(video_id: str, request: Request, who: Caller = Depends(caller),
                      deps: Deps = Depends(get_deps)) -> JSONResponse:
    fields = parse(RemixVideo, (await read_body(request, deps.config.max_upload_bytes)).fields)
    source = deps.source_of(video_id, who, param="video_id")
    prompt = deps.prompt(fields.prompt)
    spec, seconds = deps.from_source(source, fields)
    if fields.seconds is not None:
        seconds = spec["seconds"] = deps.seconds(fields.seconds)
    params = fields.params()
    spec.update(prompt=prompt, edit="remix", sources=[{"video_id": source.id}],
                params=params.to_dict() if params is not None else {})
    job = {"id": new_id(), "model": source.model, "seconds": f"{seconds:g}", "size": source.size, "prompt": prompt,
           "kind": "remix", "remixed_from_video_id": source.id, "spec": spec, "owner": who.owner}
    return JSONResponse(await deps.submit(who, job))


@router.get("/{video_id}/provenance", responses=errors(404, 409))
def provenance(video_id: str, who: Caller = Depends(caller), deps: Deps = Depends(get_deps)) -> dict[str, Any]:
    """The verify report of the finished file: computed on first request, then kept."""
    job = deps.owned(video_id, who)
    folder = deps.config.video_dir(video_id)
    video_file = files_of(job).get("video")
    if job.status != "completed" or not video_file or not (folder / video_file).is_file():
        raise APIError(409, f"video '{video_id}' is {job.status}; provenance is available once completed",
                       param="video_id", code="video_not_ready")
    report_path = folder / provenance_file(video_file)
    if not report_path.is_file():
        with deps.verify_lock:
            if not report_path.is_file():
                write_provenance(folder, video_file)
    report = json.loads(report_path.read_text())
    report.pop("path", None)  # the server's file layout is not the caller's business
    return {"object": "video.provenance", "video_id": video_id, "report": report}


@router.get("/{video_id}/plan", responses=errors(404, 409))
def scene_plan(video_id: str, who: Caller = Depends(caller), deps: Deps = Depends(get_deps)) -> dict[str, Any]:
    """The scene plan the video was made with (docs/plans.md): edit it and send it back as
    ``plan`` on a create or an edit to re-render it."""
    job = deps.owned(video_id, who)
    if job.status != "completed":
        raise APIError(409, f"video '{video_id}' is {job.status}; its plan is available once completed",
                       param="video_id", code="video_not_ready")
    plan = (job.result or {}).get("plan")
    if plan is None:
        raise APIError(404, f"video '{video_id}' has no scene plan (its model reads none)", param="video_id",
                       code="not_found")
    return {"object": "video.plan", "video_id": video_id, "plan": plan}


@router.get("/{video_id}/events", response_class=StreamingResponse, responses={
    200: {"content": {"text/event-stream": {}}, "description": "Server-sent events: video, done"}, **errors(404)})
async def events(video_id: str, request: Request, who: Caller = Depends(caller),
                 deps: Deps = Depends(get_deps)) -> StreamingResponse:
    deps.owned(video_id, who)
    return StreamingResponse(_stream(video_id, request, who, deps), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream(video_id: str, request: Request, who: Caller, deps: Deps) -> AsyncIterator[str]:
    seen = -1.0
    quiet_since = time.monotonic()
    yield "retry: 1000\n\n"
    # The store wakes us when the job may have changed: PostgreSQL pushes its NOTIFY events;
    # SQLite's subscription re-reads four times a second.
    with deps.store.subscribe(video_id) as changes:
        while not await request.is_disconnected():
            job = await to_thread.run_sync(deps.store.get, video_id, who.owner)
            if job is None:
                yield f"event: error\ndata: {json.dumps(not_found(video_id).body())}\n\n"
                return
            if job.updated != seen:
                seen, quiet_since = job.updated, time.monotonic()
                yield f"event: video\ndata: {json.dumps(video_object(job))}\n\n"
                if job.status in TERMINAL:
                    yield f"event: done\ndata: {json.dumps({'id': job.id, 'status': job.status})}\n\n"
                    return
            elif time.monotonic() - quiet_since >= 15:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
            await changes.wait(15.0)
