"""The one exception hierarchy of cinepatch.

::

    CinepatchError                     base of everything cinepatch raises on purpose
    ├── InvalidParameter (ValueError)  a parameter outside its allowed range or set
    ├── MediaError                     a file that cannot be read or written as media
    ├── UnknownPrompt (ValueError)     a prompt that names nothing the world knows
    ├── ModelError                     a checkpoint or model folder that cannot be loaded
    ├── Refused                        a request stopped by moderation or frame review
    ├── ProvenanceError                signing, watermarking or verification failed
    ├── LimitExceeded                  a per-key concurrency or daily quota stops a new job
    ├── Cancelled                      a running job was deleted or requeued under its worker
    └── APIError                       an HTTP error reply in OpenAI's shape (the service)
        └── BodyTooLarge               a request body over the upload limit (413)

Every message names the parameter or file it is about and, where there is one, the allowed
range, so a CLI or HTTP layer can show it to a person unchanged.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CinepatchError",
    "InvalidParameter",
    "MediaError",
    "UnknownPrompt",
    "ModelError",
    "Refused",
    "ProvenanceError",
    "LimitExceeded",
    "Cancelled",
    "APIError",
    "BodyTooLarge",
]


class CinepatchError(Exception):
    """Base class of every error cinepatch raises on purpose."""


class InvalidParameter(CinepatchError, ValueError):
    """A parameter is outside its allowed range or set.

    ``InvalidParameter("fps", 45, "4 to 30")`` reads ``fps=45 is invalid: allowed 4 to 30``.
    """

    def __init__(self, name: str, value: object, allowed: str, *, hint: str = "") -> None:
        self.name = name
        self.value = value
        self.allowed = allowed
        message = f"{name}={value!r} is invalid: allowed {allowed}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class MediaError(CinepatchError):
    """A file cannot be read or written as an image or video: ``path: problem``."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class UnknownPrompt(CinepatchError, ValueError):
    """A prompt names nothing the procedural world knows; the message lists what it knows."""


class ModelError(CinepatchError):
    """A model folder or checkpoint is missing, incomplete or of an unsupported family."""


class Refused(CinepatchError):
    """A request was refused by moderation or frame review.

    ``category`` is machine-readable (``"sexual/minors"``, ``"violence"`` …); the message is
    written for the person who made the request.
    """

    def __init__(self, category: str, message: str, *, stage: str = "prompt") -> None:
        self.category = category
        self.stage = stage
        super().__init__(message)


class ProvenanceError(CinepatchError):
    """Signing, watermarking, or reading provenance back failed."""


class LimitExceeded(CinepatchError):
    """A per-key limit stops a new job: ``kind`` is "concurrency" or "daily_quota"."""

    def __init__(self, kind: str, limit: int, retry_after: int) -> None:
        self.kind = kind
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(kind)


class Cancelled(CinepatchError):
    """The job was deleted, or requeued for another worker, while this one ran it."""


class APIError(CinepatchError):
    """An HTTP error reply with OpenAI's body ``{"error": {message, type, param, code}}``.

    The official clients turn it into their typed errors (400 BadRequestError, 401
    AuthenticationError, 404 NotFoundError, 429 RateLimitError).
    """

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

    def body(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class BodyTooLarge(APIError):
    """A request body grew past the limit while it was read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes", param="body", code="payload_too_large")
