"""What every route shares: the service's parts (one :class:`Deps` per app) and the caller.

Routes get them through FastAPI dependencies — ``Depends(get_deps)`` and ``Depends(caller)`` —
so each route is a plain module-level function. ``Deps`` also holds the steps every job takes
(config checks of the typed body, the source video, uploads, moderation, quota, the reply).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import logging
import secrets
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from cinepatch.errors import APIError, LimitExceeded, Refused
from cinepatch.io.atomic import write_bytes
from cinepatch.service.config import ServiceConfig
from cinepatch.service.http import COOKIE, invalid, not_found
from cinepatch.service.schemas import GenerationOptions, checked_plan
from cinepatch.service.store import ANONYMOUS, Job, JobStore
from cinepatch.service.supervisor import Supervisor

__all__ = ["Deps", "Caller", "get_deps", "caller", "run", "video_object", "TERMINAL"]

log = logging.getLogger("cinepatch.service")

IMAGE_TYPES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
TERMINAL = ("completed", "failed")


async def run(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in the thread pool: SQLite writes and decoding never block the event loop."""
    return await to_thread.run_sync(lambda: fn(*args))


@dataclass(frozen=True)
class Caller:
    owner: str
    concurrency: int
    daily_quota: int


@dataclass(frozen=True)
class Deps:
    config: ServiceConfig
    store: JobStore
    supervisor: Supervisor | None
    prompt_check: Callable[[str], None] | None
    verify_lock: threading.Lock = field(default_factory=threading.Lock)  # verification is CPU-heavy

    # -- checks that depend on this service's config ------------------------------------------

    def prompt(self, text: str | None, *, required: bool = True, param: str = "prompt") -> str:
        if text is None or not text.strip():
            if required:
                raise invalid(param, f"'{param}' is required and must be non-empty text", code="missing_required_parameter")
            return ""
        if len(text) > self.config.max_prompt_chars:
            raise invalid(param, f"'{param}' is {len(text)} characters; the limit is {self.config.max_prompt_chars}")
        return text.strip()

    def size(self, value: str | None) -> tuple[int, int]:
        text = value or self.config.default_size
        text = self.config.size_map.get(text, text)
        allowed = (f"'WIDTHxHEIGHT' with each side a multiple of 16 from {self.config.min_side} to "
                   f"{self.config.max_side}" + (f", or one of {sorted(self.config.size_map)}" if self.config.size_map else ""))
        sides = text.split("x")
        if len(sides) != 2 or not all(s.isascii() and s.isdigit() for s in sides):
            raise invalid("size", f"size={value!r} is invalid: allowed {allowed}")
        width, height = int(sides[0]), int(sides[1])
        if any(side % 16 or not self.config.min_side <= side <= self.config.max_side for side in (width, height)):
            raise invalid("size", f"size={value!r} is invalid: allowed {allowed}")
        return width, height

    def seconds(self, value: float | None, *, param: str = "seconds") -> float:
        seconds = self.config.default_seconds if value is None else float(value)
        if not 0 < seconds <= self.config.max_seconds:
            raise invalid(param, f"{param}={seconds:g} is invalid: allowed more than 0 and at most "
                          f"{self.config.max_seconds:g}")
        return seconds

    def model(self, value: str | None) -> tuple[str, str]:
        """(the name the client sent, the model alias the Studio understands)."""
        name = value or self.config.default_model
        if name not in self.config.models:
            raise invalid("model", f"model={name!r} is invalid: allowed one of {sorted(self.config.models)}")
        return name, self.config.models[name]

    def options(self, body: GenerationOptions) -> dict[str, Any]:
        if body.preset is not None and body.preset not in self.config.presets:
            raise invalid("preset", f"preset={body.preset!r} is invalid: allowed one of {list(self.config.presets)}")
        return {"seed": body.seed, "fps": body.fps, "steps": body.steps, "guidance": body.guidance,
                "negative": self.prompt(body.negative, required=False, param="negative"), "preset": body.preset,
                "plan": checked_plan(body.plan)}

    def base_spec(self, body: GenerationOptions, prompt: str, seconds: float) -> tuple[dict[str, Any], str, str]:
        """(a text-to-video spec, the model name sent, the size label) from a typed body."""
        name, alias = self.model(body.model)
        width, height = self.size(body.size)
        options = self.options(body)
        spec = {"prompt": prompt, "seconds": seconds, "width": width, "height": height, "fps": options.pop("fps"),
                "model": alias, **options, "edit": None, "sources": [], "params": {}}
        return spec, name, f"{width}x{height}"

    def from_source(self, source: Job, body: GenerationOptions) -> tuple[dict[str, Any], float]:
        """Size, model and options of an edit default to its source video's."""
        spec = dict(source.spec)
        options = self.options(body)
        spec.update({k: v for k, v in options.items() if v not in (None, "")})
        spec["seed"] = options["seed"]
        spec["plan"] = options["plan"]  # the source's plan is stored with the source, not inherited
        return spec, float(spec["seconds"])

    # -- videos -------------------------------------------------------------------------------

    def owned(self, video_id: str, who: Caller) -> Job:
        job = self.store.get(video_id, who.owner)
        if job is None:  # another key's video is indistinguishable from a missing one
            raise not_found(video_id)
        return job

    def source_of(self, video_id: str, who: Caller, *, param: str) -> Job:
        job = self.owned(video_id, who)
        status = video_object(job)["status"]  # a record that cannot be served is no source either
        if status != "completed":
            raise APIError(409, f"video '{video_id}' is {status}; only a completed video can be edited",
                           param=param, code="video_not_ready")
        return job

    async def submit(self, who: Caller, job: dict[str, Any]) -> dict[str, Any]:
        """Moderate the prompt, then queue ``job`` within the caller's limits; the video object."""
        try:
            if self.prompt_check is not None:
                await run(self.prompt_check, job["prompt"])
            created = await run(lambda: self.store.create_job(job, concurrency=who.concurrency,
                                                              daily_quota=who.daily_quota))
        except Refused as exc:
            raise APIError(400, str(exc), param="prompt", code="moderation_blocked") from None
        except LimitExceeded as exc:
            what = (f"{exc.limit} videos queued or in progress at once" if exc.kind == "concurrency"
                    else f"{exc.limit} videos a day")
            raise APIError(
                429, f"Rate limit reached: this key may have {what}. Retry after {exc.retry_after} s.",
                type="rate_limit_error", code="rate_limit_exceeded" if exc.kind == "concurrency" else "quota_exceeded",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None
        finally:
            if self.store.get(job["id"]) is None:  # not queued: drop what was uploaded for it
                shutil.rmtree(self.config.upload_dir(job["id"]), ignore_errors=True)
        return video_object(created)

    # -- uploads ------------------------------------------------------------------------------

    async def save_upload(self, upload: UploadFile, video_id: str, *, param: str, kind: str) -> Path:
        """Validate and keep an uploaded image (or video) before any work starts."""
        data = await upload.read()
        if len(data) > self.config.max_upload_bytes:
            raise APIError(413, f"'{param}' is {len(data)} bytes; the limit is {self.config.max_upload_bytes}",
                           param=param, code="payload_too_large")
        if not data:
            raise invalid(param, f"'{param}' is an empty file")
        folder = self.config.upload_dir(video_id)
        if kind == "image":
            return await run(self._keep_image, data, folder, param)
        try:
            return await run(self._keep_video, data, folder, param)
        except APIError:
            with contextlib.suppress(APIError):  # an image is a one-frame video
                return await run(self._keep_image, data, folder, param)
            raise

    def _keep_image(self, data: bytes, folder: Path, param: str) -> Path:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as image:
                (width, height), fmt = image.size, image.format
                if max(width, height) > self.config.max_image_side:
                    raise invalid(param, f"'{param}' is {width}x{height}; the limit is "
                                  f"{self.config.max_image_side} pixels a side")
                if fmt not in IMAGE_TYPES:
                    raise invalid(param, f"'{param}' is {fmt}; allowed PNG, JPEG or WebP")
                image.load()  # decodes: a truncated or corrupt file fails here
        except APIError:
            raise
        except Exception as exc:
            raise invalid(param, f"'{param}' is not a readable image: {exc}", code="invalid_image") from None
        path = folder / f"{param}{IMAGE_TYPES[fmt]}"
        write_bytes(path, data)
        return path

    def _keep_video(self, data: bytes, folder: Path, param: str) -> Path:
        import av

        try:
            with av.open(io.BytesIO(data)) as container:
                if not container.streams.video:
                    raise invalid(param, f"'{param}' has no video stream", code="invalid_video")
                stream = container.streams.video[0]
                if max(stream.width, stream.height) > self.config.max_image_side:
                    raise invalid(param, f"'{param}' is {stream.width}x{stream.height}; the limit is "
                                  f"{self.config.max_image_side} pixels a side")
        except APIError:
            raise
        except Exception as exc:
            raise invalid(param, f"'{param}' is not a readable video: {exc}", code="invalid_video") from None
        path = folder / f"{param}.mp4"
        write_bytes(path, data)
        return path


def new_id() -> str:
    return "video_" + secrets.token_hex(16)


# -- who is calling -------------------------------------------------------------------------------


def get_deps(request: Request) -> Deps:
    return request.app.state.deps


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return host == "localhost"


# Reads run inline on the event loop: in WAL mode a read never waits for a writer and an indexed
# lookup takes well under a millisecond, cheaper than two thread-pool hops.
async def caller(request: Request, deps: Deps = Depends(get_deps)) -> Caller:
    """The key behind a request: ``Authorization: Bearer KEY``, the studio cookie, or anonymous
    on loopback when the service allows it."""
    config = deps.config
    header = request.headers.get("authorization", "")
    secret = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
    if secret:
        key = deps.store.key_for(secret)
        if key is None:
            raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
        return Caller(key.id, key.concurrency if key.concurrency is not None else config.concurrency_per_key,
                      key.daily_quota if key.daily_quota is not None else config.daily_quota)
    if config.allow_anonymous and _is_loopback(request.client.host if request.client else None):
        return Caller(ANONYMOUS, config.concurrency_per_key, config.daily_quota)
    raise APIError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer KEY' (make one with"
                   " `cinepatch keys create`).", code="missing_api_key")


# -- the video object -----------------------------------------------------------------------------


def _object(job: Job) -> dict[str, Any]:
    result = job.result or {}
    error = None
    if job.error:
        error = {"code": str(job.error.get("code", "error")), "message": str(job.error.get("message", ""))}
    return {
        "id": job.id, "object": "video", "status": job.status, "progress": job.progress,
        "created_at": job.created_at, "completed_at": job.completed_at, "expires_at": None,
        # the model that made it once it is made; until then the name the client asked for
        "model": result.get("model") or job.model,
        "seconds": job.seconds, "size": job.size, "prompt": job.prompt,
        "remixed_from_video_id": job.remixed_from_video_id, "error": error,
        "cinepatch": {
            "kind": job.kind, "requested_model": job.model, "edit": job.spec.get("edit"),
            "sources": [s["video_id"] for s in job.spec.get("sources", []) if "video_id" in s],
            "params": job.spec.get("params", {}), "preset": job.spec.get("preset"),
            "expanded_prompt": result.get("expanded_prompt"), "seed": result.get("seed", job.spec.get("seed")),
            "payload": result.get("payload"), "frames": result.get("frames"),
            "fps": result.get("fps", job.spec.get("fps")), "sprite_frames": result.get("sprite_frames"),
            "warnings": result.get("warnings", []), "attempts": job.attempts, "notes": job.notes,
        },
    }


def video_object(job: Job) -> dict[str, Any]:
    """The OpenAI video object of ``job``; a record that cannot be served (a non-finite number,
    text that is not valid Unicode — stored before the edge was strict) reads as failed, with
    the reason, so one bad record never takes a key's whole library down."""
    try:
        data = _object(job)
        # the spec too: it is what an edit of this video would copy and store again
        json.dumps([data, job.spec], allow_nan=False, ensure_ascii=False).encode("utf-8")
        return data
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        log.warning("video %s cannot be served as stored: %s", job.id, exc)
        return {
            "id": job.id, "object": "video", "status": "failed", "progress": 0,
            "created_at": int(job.created_at), "completed_at": None, "expires_at": None, "model": "unknown",
            "seconds": "0", "size": "0x0", "prompt": "", "remixed_from_video_id": None,
            "error": {"code": "unreadable_record",
                      "message": f"this video's stored record cannot be served ({exc}); delete it"},
            "cinepatch": {"kind": "unknown", "notes": []},
        }
