"""The OpenAPI document: request bodies (JSON and multipart), error replies, the bearer scheme.

Routes read their bodies themselves (one endpoint takes JSON, urlencoded or multipart, as
OpenAI's does), so FastAPI cannot see them; ``body()`` describes them from the same pydantic
models that parse them, and ``errors()`` lists each route's error statuses with OpenAI's shape.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from cinepatch.service.config import ServiceConfig
from cinepatch.service.schemas import ErrorBody

__all__ = ["body", "errors", "install_openapi"]

REF = "#/components/schemas/{model}"
_COMPONENTS: dict[str, Any] = {}  # schemas the request bodies refer to, merged into the document

REASONS = {
    400: "Invalid request: the message names the parameter and its allowed values",
    401: "Missing or incorrect API key",
    403: "A cookie-authenticated change from another origin (send a bearer key instead)",
    404: "No such video for this key",
    405: "Method not allowed (see the Allow header)",
    409: "The video is not completed yet",
    413: "Request body or upload over the size limit",
    416: "Requested range not satisfiable",
    429: "Concurrency limit or daily quota reached (see Retry-After)",
}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF)
    for name, definition in schema.pop("$defs", {}).items():
        _COMPONENTS[name] = definition
    _COMPONENTS[model.__name__] = schema
    return schema


def body(model: type[BaseModel], *, files: tuple[str, ...] = (), form: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a route whose body is ``model``, as JSON or (``form``) multipart."""
    schema = _schema(model)
    json_schema: dict[str, Any] = {"$ref": REF.format(model=model.__name__)}
    sources = [name for name in files if name in schema["properties"]]
    if sources:  # JSON cannot carry an upload, so there the reference is required
        json_schema = copy.deepcopy(schema)
        json_schema["title"] = f"{model.__name__}JSON"
        json_schema["required"] = sorted({*json_schema.get("required", []), *sources})
        for name in sources:
            json_schema["properties"][name] = json_schema["properties"][name]["anyOf"][0]  # not null
    content: dict[str, Any] = {"application/json": {"schema": json_schema}}
    if form:
        multipart = copy.deepcopy(schema)
        multipart["title"] = f"{model.__name__}Form"
        multipart["properties"].pop("plan", None)  # a plan is an object: it travels in JSON bodies only
        for name in files:
            multipart["properties"][name] = {"type": "string", "format": "binary"}
        content["multipart/form-data"] = {"schema": multipart}
    return {"requestBody": {"required": True, "content": content}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entries for ``statuses`` (401 is added: every /v1 route needs a key)."""
    return {status: {"model": ErrorBody, "description": REASONS[status]} for status in sorted({401, *statuses})}


def install_openapi(app: FastAPI, config: ServiceConfig) -> None:
    """Add the body schemas (with this service's models, presets and longest duration), the
    bearer scheme and the error shape; drop FastAPI's 422 (a validation error here is a 400 in
    OpenAI's shape)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, routes=app.routes,
                          description="OpenAI's Videos API, cinepatch's edits and the web studio.")
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(copy.deepcopy(_COMPONENTS))
        bodies = [media["schema"] for item in doc["paths"].values() for operation in item.values()
                  for media in operation.get("requestBody", {}).get("content", {}).values()]
        # request bodies only: a reply's ``model`` names whichever model made the video
        _this_service([*(schemas[name] for name in _COMPONENTS), *bodies], config)
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, item in doc["paths"].items():
            for method, operation in item.items():
                operation["responses"].pop("422", None)
                if path.startswith("/v1/"):
                    operation["security"] = [{"bearer": []}]
                if any(p.get("in") == "query" for p in operation.get("parameters", [])):
                    operation["responses"].setdefault("400", _error_ref(400))
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _this_service(schemas: list[dict[str, Any]], config: ServiceConfig) -> None:
    """The sets and ranges the running service accepts, narrower than the models' own."""
    for schema in schemas:
        properties = schema.get("properties", {})
        for name, choices in (("model", sorted(config.models)), ("preset", list(config.presets))):
            if name in properties and choices:
                properties[name] = {"anyOf": [{"type": "string", "enum": choices}, {"type": "null"}]}
        seconds = properties.get("seconds", {}).get("anyOf", [{}])[0]
        if seconds.get("type") == "number":
            seconds["maximum"] = config.max_seconds


def _error_ref(status: int) -> dict[str, Any]:
    return {"description": REASONS[status],
            "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}}}
