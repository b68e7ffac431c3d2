"""The one exception hierarchy of cinepatch.

::

    CinepatchError                     base of everything cinepatch raises on purpose
    ├── InvalidParameter (ValueError)  a parameter outside its allowed range or set
    ├── MediaError                     a file that cannot be read or written as media
    ├── UnknownPrompt (ValueError)     a prompt that names nothing the world knows
    ├── ModelError                     a checkpoint or model folder that cannot be loaded
    ├── Refused                        a request stopped by moderation or frame review
    └── ProvenanceError                signing, watermarking or verification failed

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
