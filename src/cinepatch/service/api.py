"""The HTTP API: OpenAI's Videos API, cinepatch's extra edits, and the web studio page.

Handlers only validate, read and write the job store (in the thread pool — never blocking the
event loop); worker processes do the generating. Every error body has OpenAI's shape
``{"error": {"message", "type", "param", "code"}}`` so the official clients raise their typed
errors (400 BadRequestError, 401 AuthenticationError, 404 NotFoundError, 429 RateLimitError).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import re
import secrets
import shutil
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from cinepatch.errors import Refused
from cinepatch.service.config import ServiceConfig
from cinepatch.service.generator import load_callable, preset_names
from cinepatch.service.store import ANONYMOUS, Job, LimitExceeded, open_store
from cinepatch.service.supervisor import Supervisor
from cinepatch.service.worker import files_of, provenance_file, write_provenance

__all__ = ["create_app", "APIError"]

log = logging.getLogger("cinepatch.service")

STATIC = Path(__file__).parent / "static"
COOKIE = "cinepatch_key"
VARIANTS = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
IMAGE_TYPES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
TERMINAL = ("completed", "failed")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def invalid(param: str, message: str, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def not_found(video_id: str) -> APIError:
    return APIError(404, f"No video found with id '{video_id}'.", param="video_id", code="not_found")


class BodyTooLarge(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Request bodies: JSON, urlencoded or multipart, with a byte limit enforced while reading
# ---------------------------------------------------------------------------------------------


@dataclass
class Body:
    fields: dict[str, Any]
    files: dict[str, UploadFile]


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``video[id]=x`` → ``{"video": {"id": "x"}}``; ``videos[][id]`` → a list of objects."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        match = re.fullmatch(r"(\w+)((?:\[[^\]]*\])+)", key)
        if not match:
            out[key] = value
            continue
        name, rest = match.group(1), re.findall(r"\[([^\]]*)\]", match.group(2))
        if rest == ["id"]:
            out[name] = {"id": value}
        elif rest[:1] == [""]:
            items = value if isinstance(value, list) else [value]
            out[name] = [{"id": v} if rest[1:] == ["id"] else v for v in items]
        else:
            out.setdefault(name, {})[rest[0]] = value
    return out


async def read_body(request: Request, limit: int) -> Body:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise APIError(413, f"request body is {int(length)} bytes; the limit is {limit}", code="payload_too_large")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.form(max_files=16, max_fields=256)
            flat: dict[str, Any] = {}
            files: dict[str, UploadFile] = {}
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files[key.removesuffix("[]")] = value
                elif key in flat:
                    flat[key] = [*flat[key], value] if isinstance(flat[key], list) else [flat[key], value]
                else:
                    flat[key] = value
            return Body(_nest(flat), files)
        raw = await request.body()
        if not raw:
            return Body({}, {})
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise invalid("body", "the request body must be a JSON object")
        return Body(data, {})
    except BodyTooLarge:
        raise APIError(413, f"request body is larger than {limit} bytes", code="payload_too_large") from None
    except json.JSONDecodeError as exc:
        raise invalid("body", f"the request body is not valid JSON: {exc}") from None
    except APIError:
        raise
    except Exception as exc:  # python-multipart's parse errors: malformed boundaries, parts …
        raise invalid("body", f"malformed {content_type or 'request'} body: {exc}") from None


class ServerTiming:
    """ASGI middleware: ``Server-Timing: app;dur=…`` (ms from the request reaching the app to
    its response headers), so a client can tell the server's time from the network's and its own."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed(message: dict) -> None:
            if message["type"] == "http.response.start":
                duration = (time.perf_counter() - start) * 1000
                message["headers"] = [*message.get("headers", []), (b"server-timing", f"app;dur={duration:.2f}".encode())]
            await send(message)

        await self.app(scope, receive, timed)


class LimitBody:
    """ASGI middleware: stop reading a request body past ``limit`` bytes."""

    def __init__(self, app: Callable[..., Awaitable[None]], limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge()
            return message

        await self.app(scope, limited, send)


# ---------------------------------------------------------------------------------------------
# Validation of the fields a job takes
# ---------------------------------------------------------------------------------------------


def _text(fields: dict[str, Any], name: str, config: ServiceConfig, *, required: bool = True) -> str:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise invalid(name, f"'{name}' is required and must be non-empty text", code="missing_required_parameter")
        return ""
    if not isinstance(value, str):
        raise invalid(name, f"'{name}' must be a string")
    if len(value) > config.max_prompt_chars:
        raise invalid(name, f"'{name}' is {len(value)} characters; the limit is {config.max_prompt_chars}")
    return value.strip()


def parse_size(value: Any, config: ServiceConfig) -> tuple[int, int]:
    text = str(value if value not in (None, "") else config.default_size).strip().lower()
    text = config.size_map.get(text, text)
    match = re.fullmatch(r"(\d{1,5})x(\d{1,5})", text)
    allowed = (
        f"'WIDTHxHEIGHT' with each side a multiple of 16 from {config.min_side} to {config.max_side}"
        + (f", or one of {sorted(config.size_map)}" if config.size_map else "")
    )
    if not match:
        raise invalid("size", f"size={value!r} is invalid: allowed {allowed}")
    width, height = int(match.group(1)), int(match.group(2))
    for side in (width, height):
        if side % 16 or not config.min_side <= side <= config.max_side:
            raise invalid("size", f"size={value!r} is invalid: allowed {allowed}")
    return width, height


def parse_seconds(value: Any, config: ServiceConfig, *, default: float | None = None) -> float:
    if value in (None, ""):
        value = default if default is not None else config.default_seconds
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise invalid("seconds", f"seconds={value!r} is invalid: allowed a number of seconds") from None
    if not 0 < seconds <= config.max_seconds:
        raise invalid("seconds", f"seconds={value!r} is invalid: allowed more than 0 and at most {config.max_seconds:g}")
    return seconds


def _label(seconds: float) -> str:
    return f"{seconds:g}"


def _strength(fields: dict[str, Any]) -> float | None:
    """A remix strength: more than 0 (a light touch), at most 1 (a full re-imagining)."""
    value = _optional_number(fields, "strength", float, 0.0, 1.0)
    if value is not None and value <= 0:
        raise invalid("strength", "'strength' must be more than 0 and at most 1")
    return value


def _optional_number(fields: dict[str, Any], name: str, kind: type, low: float, high: float) -> Any:
    value = fields.get(name)
    if value in (None, ""):
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise invalid(name, f"{name}={value!r} is invalid: allowed a {kind.__name__}") from None
    if not low <= number <= high:
        raise invalid(name, f"{name}={value!r} is invalid: allowed {low:g} to {high:g}")
    return number


def parse_model(value: Any, config: ServiceConfig) -> tuple[str, str]:
    name = str(value) if value not in (None, "") else config.default_model
    if name not in config.models:
        raise invalid("model", f"model={name!r} is invalid: allowed one of {sorted(config.models)}")
    return name, config.models[name]


def _options(fields: dict[str, Any], config: ServiceConfig) -> dict[str, Any]:
    """cinepatch's own knobs, accepted beside the OpenAI fields (``extra_body`` in the SDK)."""
    preset = fields.get("preset") or None
    if preset is not None and preset not in config.presets:
        raise invalid("preset", f"preset={preset!r} is invalid: allowed one of {list(config.presets)}")
    return {
        "seed": _optional_number(fields, "seed", int, 0, 2**31 - 1),
        "fps": _optional_number(fields, "fps", int, 1, 60),
        "steps": _optional_number(fields, "steps", int, 1, 500),
        "guidance": _optional_number(fields, "guidance", float, 0.0, 30.0),
        "negative": _text(fields, "negative", config, required=False),
        "preset": preset,
    }


# ---------------------------------------------------------------------------------------------
# The application
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    owner: str
    concurrency: int
    daily_quota: int


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return host == "localhost"


def create_app(config: ServiceConfig, *, supervise: bool = True) -> FastAPI:
    """The ASGI app. ``supervise`` starts (and stops) the worker processes with it."""
    if not config.presets:
        config = dataclasses.replace(config, presets=preset_names(config.studio_dirs[0]))
    store = open_store(config)
    supervisor = Supervisor(config, store) if supervise else None
    prompt_check = load_callable(config.prompt_check) if config.prompt_check else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if supervisor is not None:
            await to_thread.run_sync(supervisor.start)
        try:
            yield
        finally:
            if supervisor is not None:
                await to_thread.run_sync(supervisor.stop)

    app = FastAPI(title="cinepatch", version="1", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.store = store
    app.state.supervisor = supervisor
    app.state.config = config
    app.add_middleware(LimitBody, limit=config.max_upload_bytes + 1024 * 1024)
    app.add_middleware(ServerTiming)

    async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await to_thread.run_sync(lambda: fn(*args, **kwargs))

    # -- errors -------------------------------------------------------------------------------

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return APIError(500, f"internal error ({type(exc).__name__}); see the server log", type="server_error",
                        code="internal_error").response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return invalid(param or "request", f"{param}: {first.get('msg', 'invalid request')}").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return APIError(exc.status_code, str(exc.detail), code=code).response()

    # -- who is calling -----------------------------------------------------------------------

    # Reads run inline on the event loop: in WAL mode a read never waits for a writer and an
    # indexed lookup takes well under a millisecond, cheaper than two thread-pool hops. Writes,
    # which may wait for SQLite's lock, go through the thread pool (``run``).
    async def caller(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        secret = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
        if secret:
            key = store.key_for(secret)
            if key is None:
                raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
            return Caller(
                key.id,
                key.concurrency if key.concurrency is not None else config.concurrency_per_key,
                key.daily_quota if key.daily_quota is not None else config.daily_quota,
            )
        if config.allow_anonymous and _is_loopback(request.client.host if request.client else None):
            return Caller(ANONYMOUS, config.concurrency_per_key, config.daily_quota)
        raise APIError(
            401,
            "You didn't provide an API key. Send it as 'Authorization: Bearer KEY' (make one with"
            " `cinepatch keys create`).",
            code="missing_api_key",
        )

    def owned(video_id: str, who: Caller) -> Job:
        job = store.get(video_id, who.owner)
        if job is None:  # another key's video is indistinguishable from a missing one
            raise not_found(video_id)
        return job

    def video_object(job: Job) -> dict[str, Any]:
        result = job.result or {}
        error = None
        if job.error:
            error = {"code": job.error.get("code", "error"), "message": job.error.get("message", "")}
        return {
            "id": job.id,
            "object": "video",
            "status": job.status,
            "progress": job.progress,
            "created_at": job.created_at,
            "completed_at": job.completed_at,
            "expires_at": None,
            "model": job.model,
            "seconds": job.seconds,
            "size": job.size,
            "prompt": job.prompt,
            "remixed_from_video_id": job.remixed_from_video_id,
            "error": error,
            "cinepatch": {
                "kind": job.kind,
                "edit": job.spec.get("edit"),
                "sources": [s["video_id"] for s in job.spec.get("sources", []) if "video_id" in s],
                "params": job.spec.get("params", {}),
                "preset": job.spec.get("preset"),
                "expanded_prompt": result.get("expanded_prompt"),
                "seed": result.get("seed", job.spec.get("seed")),
                "payload": result.get("payload"),
                "frames": result.get("frames"),
                "fps": result.get("fps", job.spec.get("fps")),
                "sprite_frames": result.get("sprite_frames"),
                "warnings": result.get("warnings", []),
                "attempts": job.attempts,
                "notes": job.notes,
            },
        }

    # -- making jobs --------------------------------------------------------------------------

    def new_id() -> str:
        return "video_" + secrets.token_hex(16)

    def source_of(ref: Any, who: Caller, *, param: str) -> Job:
        video_id = ref.get("id") if isinstance(ref, dict) else ref
        if isinstance(video_id, str) and video_id.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                video_id = json.loads(video_id).get("id")
        if not isinstance(video_id, str) or not video_id:
            raise invalid(param, f"'{param}' must reference a video as {{\"id\": \"video_…\"}} or be an upload")
        job = owned(video_id, who)
        if job.status != "completed":
            raise APIError(409, f"video '{video_id}' is {job.status}; only a completed video can be edited",
                           param=param, code="video_not_ready")
        return job

    async def save_upload(upload: UploadFile, video_id: str, *, param: str, kind: str) -> Path:
        """Validate and keep an uploaded image or video before any work starts."""
        data = await upload.read()
        if len(data) > config.max_upload_bytes:
            raise APIError(413, f"'{param}' is {len(data)} bytes; the limit is {config.max_upload_bytes}",
                           param=param, code="payload_too_large")
        if not data:
            raise invalid(param, f"'{param}' is an empty file")
        folder = config.upload_dir(video_id)

        def check_image() -> Path:
            import io

            from PIL import Image

            try:
                with Image.open(io.BytesIO(data)) as image:
                    width, height = image.size
                    fmt = image.format
                    if width > config.max_image_side or height > config.max_image_side:
                        raise invalid(param, f"'{param}' is {width}x{height}; the limit is "
                                      f"{config.max_image_side} pixels a side")
                    if fmt not in IMAGE_TYPES:
                        raise invalid(param, f"'{param}' is {fmt}; allowed PNG, JPEG or WebP")
                    image.load()  # decodes: a truncated or corrupt file fails here
            except APIError:
                raise
            except Exception as exc:
                raise invalid(param, f"'{param}' is not a readable image: {exc}", code="invalid_image") from None
            path = folder / f"{param}{IMAGE_TYPES[fmt]}"
            _write(path, data)
            return path

        def check_video() -> Path:
            import io

            import av

            try:
                with av.open(io.BytesIO(data)) as container:
                    if not container.streams.video:
                        raise invalid(param, f"'{param}' has no video stream", code="invalid_video")
                    stream = container.streams.video[0]
                    if max(stream.width, stream.height) > config.max_image_side:
                        raise invalid(param, f"'{param}' is {stream.width}x{stream.height}; the limit is "
                                      f"{config.max_image_side} pixels a side")
            except APIError:
                raise
            except Exception as exc:
                raise invalid(param, f"'{param}' is not a readable video: {exc}", code="invalid_video") from None
            path = folder / f"{param}.mp4"
            _write(path, data)
            return path

        if kind == "image":
            return await run(check_image)
        try:
            return await run(check_video)
        except APIError:
            with contextlib.suppress(APIError):  # an image is a one-frame video
                return await run(check_image)
            raise

    async def submit(
        who: Caller,
        *,
        video_id: str,
        kind: str,
        prompt: str,
        spec: dict[str, Any],
        model: str,
        seconds: float,
        size: str,
        remixed_from: str | None = None,
    ) -> JSONResponse:
        if prompt_check is not None:
            try:
                await run(prompt_check, prompt)
            except Refused as exc:
                shutil.rmtree(config.upload_dir(video_id), ignore_errors=True)
                raise APIError(400, str(exc), param="prompt", code="moderation_blocked") from None
        job = {
            "id": video_id, "owner": who.owner, "model": model, "seconds": _label(seconds), "size": size,
            "prompt": prompt, "kind": kind, "remixed_from_video_id": remixed_from, "spec": spec,
        }
        try:
            created = await run(lambda: store.create_job(job, concurrency=who.concurrency, daily_quota=who.daily_quota))
        except LimitExceeded as exc:
            shutil.rmtree(config.upload_dir(video_id), ignore_errors=True)
            what = (f"{exc.limit} videos queued or in progress at once" if exc.kind == "concurrency"
                    else f"{exc.limit} videos a day")
            raise APIError(
                429, f"Rate limit reached: this key may have {what}. Retry after {exc.retry_after} s.",
                type="rate_limit_error", code="rate_limit_exceeded" if exc.kind == "concurrency" else "quota_exceeded",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None
        return JSONResponse(video_object(created))

    def base_spec(prompt: str, seconds: float, width: int, height: int, alias: str, options: dict[str, Any]) -> dict[str, Any]:
        return {
            "prompt": prompt, "seconds": seconds, "width": width, "height": height, "fps": options.pop("fps"),
            "model": alias, **options, "edit": None, "sources": [], "params": {},
        }

    def from_source(source: Job, fields: dict[str, Any], *, seconds: float | None = None) -> tuple[dict[str, Any], float]:
        """Size, model and options of an edit default to its source video's."""
        spec = dict(source.spec)
        options = _options(fields, config)
        for name, value in options.items():
            if value not in (None, ""):
                spec[name] = value
        spec["seed"] = options["seed"]
        seconds = seconds if seconds is not None else float(spec["seconds"])
        spec["seconds"] = seconds
        return spec, seconds

    # -- OpenAI's Videos API ------------------------------------------------------------------

    @app.post("/v1/videos")
    async def create_video(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        body = await read_body(request, config.max_upload_bytes)
        fields = body.fields
        prompt = _text(fields, "prompt", config)
        model, alias = parse_model(fields.get("model"), config)
        width, height = parse_size(fields.get("size"), config)
        seconds = parse_seconds(fields.get("seconds"), config)
        spec = base_spec(prompt, seconds, width, height, alias, _options(fields, config))
        video_id = new_id()
        kind = "create"
        if "input_reference" in body.files:
            path = await save_upload(body.files["input_reference"], video_id, param="input_reference", kind="image")
            spec.update(edit="image", sources=[{"path": str(path)}])
        elif isinstance(fields.get("input_reference"), dict) or fields.get("input_reference"):
            raise invalid("input_reference", "'input_reference' must be an uploaded image file")
        return await submit(who, video_id=video_id, kind=kind, prompt=prompt, spec=spec, model=model,
                            seconds=seconds, size=f"{width}x{height}")

    @app.get("/v1/videos")
    async def list_videos(
        after: str | None = None, limit: int = 20, order: str = "desc", who: Caller = Depends(caller)
    ) -> JSONResponse:
        if not 1 <= limit <= 100:
            raise invalid("limit", f"limit={limit} is invalid: allowed 1 to 100")
        if order not in ("asc", "desc"):
            raise invalid("order", f"order={order!r} is invalid: allowed 'asc' or 'desc'")
        try:
            jobs, more = store.list(who.owner, after=after, limit=limit, order=order)
        except KeyError:
            raise invalid("after", f"after={after!r} names no video of yours") from None
        data = [video_object(j) for j in jobs]
        return JSONResponse({
            "object": "list", "data": data, "has_more": more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
        })

    @app.get("/v1/videos/{video_id}")
    async def retrieve_video(video_id: str, who: Caller = Depends(caller)) -> JSONResponse:
        job = owned(video_id, who)
        headers = {"openai-poll-after-ms": str(config.poll_after_ms)} if job.status not in TERMINAL else None
        return JSONResponse(video_object(job), headers=headers)

    @app.delete("/v1/videos/{video_id}")
    def delete_video(video_id: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        job = store.delete(video_id, who.owner)
        if job is None:
            raise not_found(video_id)
        shutil.rmtree(config.video_dir(video_id), ignore_errors=True)
        shutil.rmtree(config.upload_dir(video_id), ignore_errors=True)
        return {"id": video_id, "object": "video.deleted", "deleted": True}

    @app.get("/v1/videos/{video_id}/content")
    async def download_content(video_id: str, variant: str = "video", who: Caller = Depends(caller)) -> FileResponse:
        if variant not in VARIANTS:
            raise invalid("variant", f"variant={variant!r} is invalid: allowed one of {list(VARIANTS)}")
        job = owned(video_id, who)
        if job.status != "completed":
            raise APIError(409, f"video '{video_id}' is {job.status}; its content is available once completed",
                           param="video_id", code="video_not_ready")
        name = files_of(job).get(variant)
        path = config.video_dir(video_id) / name if name else None
        if path is None or not path.is_file():
            raise APIError(404, f"video '{video_id}' has no {variant} file", param="variant", code="not_found")
        suffix = Path(name).suffix
        return FileResponse(path, media_type=VARIANTS[variant], filename=f"{video_id}{suffix}",
                            headers={"Cache-Control": "private, max-age=86400"}, content_disposition_type="inline")

    @app.post("/v1/videos/{video_id}/remix")
    async def remix_video(video_id: str, request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        fields = (await read_body(request, config.max_upload_bytes)).fields
        source = source_of(video_id, who, param="video_id")
        prompt = _text(fields, "prompt", config)
        spec, seconds = from_source(source, fields)
        strength = _strength(fields)
        spec.update(prompt=prompt, edit="remix", sources=[{"video_id": source.id}],
                    params={"strength": strength} if strength is not None else {})
        return await submit(who, video_id=new_id(), kind="remix", prompt=prompt, spec=spec,
                            model=source.model, seconds=seconds, size=source.size, remixed_from=source.id)

    async def edit_source(body: Body, who: Caller, video_id: str, param: str = "video") -> tuple[dict[str, Any], Job | None]:
        """An edit's source: a reference to a completed video, or an uploaded file."""
        if param in body.files:
            path = await save_upload(body.files[param], video_id, param=param, kind="video")
            return {"path": str(path)}, None
        if param not in body.fields:
            raise invalid(param, f"'{param}' is required: a video reference {{\"id\": …}} or an upload",
                          code="missing_required_parameter")
        source = source_of(body.fields[param], who, param=param)
        return {"video_id": source.id}, source

    async def edit_job(request: Request, who: Caller, *, edit: str, kind: str, seconds_field: bool,
                       params: Callable[[dict[str, Any]], dict[str, Any]] = lambda f: {}) -> JSONResponse:
        body = await read_body(request, config.max_upload_bytes)
        fields = body.fields
        prompt = _text(fields, "prompt", config, required=edit not in ("loop", "recut"))
        video_id = new_id()
        ref, source = await edit_source(body, who, video_id)
        if not prompt and source is None:
            raise invalid("prompt", "'prompt' is required when the video is uploaded", code="missing_required_parameter")
        if source is not None:
            spec, seconds = from_source(source, fields)
            model, size = source.model, source.size
        else:
            model, alias = parse_model(fields.get("model"), config)
            width, height = parse_size(fields.get("size"), config)
            seconds = parse_seconds(None, config)
            spec = base_spec(prompt, seconds, width, height, alias, _options(fields, config))
            size = f"{width}x{height}"
        if seconds_field or fields.get("seconds") not in (None, ""):
            seconds = parse_seconds(fields.get("seconds"), config)
            spec["seconds"] = seconds
        spec.update(prompt=prompt or (source.prompt if source else ""), edit=edit, sources=[ref], params=params(fields))
        return await submit(who, video_id=video_id, kind=kind, prompt=spec["prompt"], spec=spec,
                            model=model, seconds=seconds, size=size,
                            remixed_from=source.id if source is not None and kind in ("edit", "remix") else None)

    @app.post("/v1/videos/extensions")
    async def extend_video(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        return await edit_job(request, who, edit="extend", kind="extend", seconds_field=True,
                              params=optional_params("direction"))

    @app.post("/v1/videos/edits")
    async def edit_video(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        return await edit_job(request, who, edit="remix", kind="edit", seconds_field=False,
                              params=optional_params("strength"))

    # -- cinepatch's own edits: same object, same style ---------------------------------------

    @app.post("/v1/videos/loops")
    async def loop_video(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        return await edit_job(request, who, edit="loop", kind="loop", seconds_field=False,
                              params=optional_params("bridge"))

    def recut_params(fields: dict[str, Any]) -> dict[str, Any]:
        """``start``/``end`` (one range) or ``ranges: [[start, end], …]``, seconds of the source."""
        ranges = fields.get("ranges")
        if ranges is None:
            start = _optional_number(fields, "start", float, 0.0, 3600.0)
            end = _optional_number(fields, "end", float, 0.0, 3600.0)
            if start is None or end is None or end <= start:
                raise invalid("end", "re-cut needs 'start' and 'end' (seconds of the source to keep), with end > start")
            ranges = [[start, end]]
        if not isinstance(ranges, list) or not all(
            isinstance(r, list) and len(r) == 2 and all(isinstance(x, (int, float)) for x in r) and 0 <= r[0] < r[1]
            for r in ranges
        ):
            raise invalid("ranges", "'ranges' must be a list of [start, end] pairs in seconds, start < end")
        params: dict[str, Any] = {"ranges": ranges}
        at = _optional_number(fields, "at", float, 0.0, 3600.0)
        if at is not None:
            params["at"] = at
        return params

    def optional_params(*names: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """Pass an edit's optional knobs (seconds or words) through to the Studio when given."""

        def pick(fields: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name in names:
                value = fields.get(name)
                if value in (None, ""):
                    continue
                if name in ("direction", "mode", "with", "at") and isinstance(value, str):
                    out[name] = value
                elif name == "strength":
                    out[name] = _strength(fields)
                else:
                    out[name] = _optional_number(fields, name, float, 0.0, 3600.0)
            return out

        return pick

    @app.post("/v1/videos/recuts")
    async def recut_video(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        return await edit_job(request, who, edit="recut", kind="recut", seconds_field=False, params=recut_params)

    @app.post("/v1/videos/blends")
    async def blend_videos(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        body = await read_body(request, config.max_upload_bytes)
        fields = body.fields
        refs = fields.get("videos")
        if not isinstance(refs, list) or len(refs) != 2:
            raise invalid("videos", "'videos' must list exactly two video references [{\"id\": …}, {\"id\": …}]")
        sources = [source_of(ref, who, param="videos") for ref in refs]
        prompt = _text(fields, "prompt", config, required=False) or f"{sources[0].prompt}, becoming {sources[1].prompt}"
        spec, seconds = from_source(sources[0], fields)
        if fields.get("seconds") not in (None, ""):
            seconds = parse_seconds(fields["seconds"], config)
            spec["seconds"] = seconds
        params = optional_params("transition", "mode", "with")(fields)
        used = sources[:1] if params.get("mode") == "mix" else sources  # a mix keeps the first's layout
        spec.update(prompt=prompt, edit="blend", sources=[{"video_id": s.id} for s in used], params=params)
        return await submit(who, video_id=new_id(), kind="blend", prompt=prompt, spec=spec,
                            model=sources[0].model, seconds=seconds, size=sources[0].size)

    @app.post("/v1/videos/storyboards")
    async def storyboard_video(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        body = await read_body(request, config.max_upload_bytes)
        fields = body.fields
        cards = fields.get("cards")
        if isinstance(cards, str):
            with contextlib.suppress(json.JSONDecodeError):
                cards = json.loads(cards)
        if not isinstance(cards, list) or not 1 <= len(cards) <= 12:
            raise invalid("cards", "'cards' must be a list of 1 to 12 {\"prompt\", \"seconds\"} cards")
        board, start = [], 0.0
        for i, card in enumerate(cards):
            if not isinstance(card, dict):
                raise invalid(f"cards[{i}]", "each card must be an object with 'prompt' and 'seconds'")
            text = _text(card, "prompt", config)
            length = parse_seconds(card.get("seconds"), config, default=2.0)
            board.append({"at": start, "prompt": text, "seconds": length})  # unrounded: cards abut exactly
            start += length
        seconds = parse_seconds(start, config)  # the whole board must fit the duration limit
        model, alias = parse_model(fields.get("model"), config)
        width, height = parse_size(fields.get("size"), config)
        prompt = _text(fields, "prompt", config, required=False) or "; then ".join(c["prompt"] for c in board)
        spec = base_spec(prompt, seconds, width, height, alias, _options(fields, config))
        spec.update(edit="storyboard", params={"cards": board})
        return await submit(who, video_id=new_id(), kind="storyboard", prompt=prompt, spec=spec,
                            model=model, seconds=seconds, size=f"{width}x{height}")

    verify_lock = threading.Lock()  # one verification at a time: it is CPU-heavy

    @app.get("/v1/videos/{video_id}/provenance")
    def provenance(video_id: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        """The verify report of the finished file: computed on first request, then kept."""
        job = owned(video_id, who)
        folder = config.video_dir(video_id)
        video_file = files_of(job).get("video")
        if job.status != "completed" or not video_file or not (folder / video_file).is_file():
            raise APIError(409, f"video '{video_id}' is {job.status}; provenance is available once completed",
                           param="video_id", code="video_not_ready")
        report_path = folder / provenance_file(video_file)
        if not report_path.is_file():
            with verify_lock:
                if not report_path.is_file():
                    write_provenance(folder, video_file)
        report = json.loads(report_path.read_text())
        report.pop("path", None)  # the server's file layout is not the caller's business
        return {"object": "video.provenance", "video_id": video_id, "report": report}

    @app.get("/v1/videos/{video_id}/events")
    async def events(video_id: str, request: Request, who: Caller = Depends(caller)) -> StreamingResponse:
        owned(video_id, who)

        async def stream() -> AsyncIterator[str]:
            seen = -1.0
            quiet_since = time.monotonic()
            yield "retry: 1000\n\n"
            # The store wakes us when the job may have changed: PostgreSQL pushes its NOTIFY
            # events; SQLite's subscription re-reads four times a second.
            with store.subscribe(video_id) as changes:
                while not await request.is_disconnected():
                    job = await run(store.get, video_id, who.owner)
                    if job is None:
                        yield f"event: error\ndata: {json.dumps(not_found(video_id).response().body.decode())}\n\n"
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

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # -- the web studio -----------------------------------------------------------------------

    @app.get("/v1/studio/options")
    def studio_options(who: Caller = Depends(caller)) -> dict[str, Any]:
        sizes = ["64x64", "112x64", "64x112", "128x128", "256x144", "144x256", "256x256"]
        return {
            "sizes": [s for s in sizes if _fits(s, config)],
            "size_map": config.size_map,
            "default_size": config.default_size,
            "max_seconds": config.max_seconds,
            "default_seconds": config.default_seconds,
            "models": sorted(config.models),
            "default_model": config.default_model,
            "presets": list(config.presets),
            "max_prompt_chars": config.max_prompt_chars,
            "owner": who.owner,
        }

    @app.post("/studio/session")
    async def studio_login(request: Request) -> JSONResponse:
        fields = (await read_body(request, 4096)).fields
        secret = str(fields.get("key", "")).strip()
        key = await run(store.key_for, secret) if secret else None
        if key is None:
            raise APIError(401, "Incorrect API key provided.", param="key", code="invalid_api_key")
        response = JSONResponse({"object": "studio.session", "key_id": key.id, "name": key.name})
        response.set_cookie(COOKIE, secret, httponly=True, samesite="strict", max_age=30 * 86400)
        return response

    @app.delete("/studio/session")
    def studio_logout() -> JSONResponse:
        response = JSONResponse({"object": "studio.session", "deleted": True})
        response.delete_cookie(COOKIE)
        return response

    @app.get("/healthz")
    def health() -> dict[str, Any]:
        return {"ok": True, "workers": supervisor.alive() if supervisor else 0, "jobs": store.counts()}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _fits(size: str, config: ServiceConfig) -> bool:
    try:
        parse_size(size, config)
    except APIError:
        return False
    return True


def _write(path: Path, data: bytes) -> None:
    from cinepatch.io.atomic import write_bytes

    write_bytes(path, data)
