"""The HTTP plumbing under the routes: reading bodies, error replies, and middleware.

Every error reply has OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` —
validation errors, unknown routes, 405s (with ``Allow``), Range errors and bugs alike — so the
official clients raise their typed errors and nothing answers in plain text or a traceback.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from cinepatch.errors import APIError, BodyTooLarge, InvalidParameter

__all__ = [
    "Body", "read_body", "parse", "install_error_handlers", "invalid", "not_found", "error_response",
    "ServerTiming", "LimitBody", "SecurityHeaders", "SameOrigin", "COOKIE",
]

log = logging.getLogger("cinepatch.service")

COOKIE = "cinepatch_key"
Model = TypeVar("Model", bound=BaseModel)

# The studio page loads only its own files; nothing may frame it (clickjacking) or sniff types.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def invalid(param: str, message: str, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def not_found(video_id: str) -> APIError:
    return APIError(404, f"No video found with id '{video_id}'.", param="video_id", code="not_found")


# -- request bodies: JSON, urlencoded or multipart ------------------------------------------------


@dataclass(frozen=True)
class Body:
    fields: dict[str, Any]
    files: dict[str, UploadFile]


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``video[id]=x`` → ``{"video": {"id": "x"}}``; ``videos[][id]`` → a list of objects."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        match = re.fullmatch(r"(\w+)((?:\[[^\]]*\])+)", key, flags=re.ASCII)
        if not match:
            out[key] = value
            continue
        name, rest = match.group(1), re.findall(r"\[([^\]]*)\]", match.group(2))
        if rest == ["id"]:
            out[name] = {"id": value}
        elif rest[:1] == [""]:
            items = value if isinstance(value, list) else [value]
            out[name] = [{"id": v} if rest[1:] == ["id"] else v for v in items]
        elif isinstance(out.setdefault(name, {}), dict):
            out[name][rest[0]] = value
    return out


def _no_constant(name: str) -> object:
    raise invalid("body", f"the request body holds {name}; JSON numbers must be finite")


def _check_multipart_end(raw: bytes, content_type: str) -> None:
    """python-multipart accepts a body cut before its closing boundary and drops the last,
    unfinished field (``seconds=1`` then silently defaults): refuse such a body instead."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise invalid("body", "malformed multipart body: no boundary in its Content-Type")
    if not raw.rstrip(b"\r\n").endswith(b"--" + match.group(1).encode("latin-1") + b"--"):
        raise invalid("body", "malformed multipart body: it does not end with its closing boundary (incomplete)")


async def _read_form(request: Request, content_type: str) -> Body:
    if content_type == "multipart/form-data":
        _check_multipart_end(await request.body(), request.headers.get("content-type", ""))
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


async def read_body(request: Request, limit: int) -> Body:
    """The body's fields and files, read at most ``limit`` bytes far."""
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > limit:
        raise APIError(413, f"request body is {int(length)} bytes; the limit is {limit}", param="body",
                       code="payload_too_large")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            return await _read_form(request, content_type)
        raw = await request.body()
        if not raw:
            return Body({}, {})
        data = json.loads(raw, parse_constant=_no_constant)
    except APIError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise invalid("body", f"the request body is not valid JSON: {exc}") from None
    except Exception as exc:  # python-multipart's parse errors: malformed boundaries, parts …
        raise invalid("body", f"malformed {content_type or 'request'} body: {exc}") from None
    if not isinstance(data, dict):
        raise invalid("body", "the request body must be a JSON object")
    return Body(data, {})


def parse(model: type[Model], fields: dict[str, Any]) -> Model:
    """``fields`` as ``model``; the first problem becomes a 400 naming its parameter."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise _validation_error(exc.errors(include_url=False, include_input=False)) from None


def _validation_error(errors: list[Any]) -> APIError:
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or "body"
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        message = f"'{param}' is not a parameter of this endpoint"
    elif first.get("type") == "missing":
        return invalid(param, f"'{param}' is required", code="missing_required_parameter")
    return invalid(param, message if message.startswith(param) else f"{param}: {message}")


# -- error replies ------------------------------------------------------------------------------


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(InvalidParameter)
    async def _invalid(_: Request, exc: InvalidParameter) -> JSONResponse:
        return error_response(invalid(exc.name, str(exc)))

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(APIError(500, f"internal error ({type(exc).__name__}); see the server log",
                                       type="server_error", code="internal_error"))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(_validation_error(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed(request)
        return error_response(APIError(exc.status_code, str(exc.detail), code=code, headers=headers))


def _allowed(request: Request) -> str:
    """Every method any route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in _routes(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods - {"HEAD"}))


def _routes(routes: list[Any]) -> list[Any]:
    """The app's routes with included routers opened up (FastAPI keeps those nested)."""
    out: list[Any] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out.extend(_routes(inner.routes) if inner is not None else [route])
    return out


# -- middleware ---------------------------------------------------------------------------------

ASGIApp = Callable[..., Awaitable[None]]


class ServerTiming:
    """``Server-Timing: app;dur=…`` (ms from the request reaching the app to its response
    headers), so a client can tell the server's time from the network's and its own."""

    def __init__(self, app: ASGIApp) -> None:
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


class SecurityHeaders:
    """CSP, frame-ancestors, nosniff and Referrer-Policy on every reply."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class LimitBody:
    """Stop reading a request body past ``limit`` bytes (a 413, not a full read)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
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
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)


def cross_origin(headers: dict[str, str], host: str) -> str | None:
    """Why a state-changing request without a bearer key may come from another site, or None.

    The cookie rides along on any request the browser makes to this host, and SameSite does not
    tell ports of one host apart; so a cookie- (or loopback-) authenticated change must say it
    comes from this very origin: ``Origin`` (or ``Sec-Fetch-Site: same-origin``) must match.
    """
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        return None if parts.netloc == host and parts.scheme in ("http", "https") else f"Origin {origin!r}"
    if headers.get("sec-fetch-site") in ("same-origin", "none"):
        return None
    if headers.get("cookie") and COOKIE in headers["cookie"]:
        return "a request with the studio cookie but without an Origin header"
    return None


class SameOrigin:
    """Refuse (403) state-changing requests from other origins unless they carry a bearer key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            if not headers.get("authorization", "").lower().startswith("bearer "):
                reason = cross_origin(headers, headers.get("host", ""))
                if reason is not None:
                    error = APIError(403, f"{reason} may not change this studio; send the API key as "
                                     "'Authorization: Bearer KEY' from other sites", code="cross_origin")
                    await error_response(error)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
