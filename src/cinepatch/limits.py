"""Every numeric limit a request meets, in one table used by the CLI, the API and the app.

A limit lives here once so the HTTP edge, the command line and :class:`cinepatch.app.
VideoRequest` cannot drift apart (a seed the API refuses must not be one the CLI accepts).
Each :class:`Limit` checks a value and raises :class:`~cinepatch.errors.InvalidParameter`
naming the parameter and the allowed range; ``describe()`` is the same range in words, for
help texts and the OpenAPI schema.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cinepatch.errors import InvalidParameter

__all__ = [
    "Limit",
    "SEED",
    "FPS",
    "STEPS",
    "GUIDANCE",
    "SECONDS",
    "SIDE",
    "PROMPT_CHARS",
    "STRENGTH",
    "EDIT_SECONDS",
    "RANGE_SECONDS",
    "CARDS",
    "check_text",
]


@dataclass(frozen=True)
class Limit:
    """``low <= value <= high`` (``low < value`` when ``open_low``), and finite."""

    name: str
    low: float
    high: float
    integer: bool = False
    open_low: bool = False
    multiple_of: int = 1

    def describe(self) -> str:
        low = f"more than {self.low:g}" if self.open_low else f"{self.low:g}"
        words = f"{low} to {self.high:g}" if not self.open_low else f"{low}, at most {self.high:g}"
        if self.multiple_of > 1:
            words += f", a multiple of {self.multiple_of}"
        return ("a whole number " if self.integer else "") + words

    def check(self, value: object, *, name: str | None = None) -> float:
        """``value`` if it is inside the limit; else InvalidParameter naming ``name``."""
        param = name or self.name
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidParameter(param, value, self.describe())
        if self.integer and not isinstance(value, int):
            raise InvalidParameter(param, value, self.describe())
        if not math.isfinite(value) or value > self.high or value < self.low:
            raise InvalidParameter(param, value, self.describe())
        if (self.open_low and value <= self.low) or (self.multiple_of > 1 and value % self.multiple_of):
            raise InvalidParameter(param, value, self.describe())
        return value


# Seeds stay below 2**31: random seeds are drawn there, and every RNG and JSON reader holds them.
SEED = Limit("seed", 0, 2**31 - 1, integer=True)
FPS = Limit("fps", 1, 60, integer=True)
STEPS = Limit("steps", 1, 500, integer=True)
GUIDANCE = Limit("guidance", 0, 30)
SECONDS = Limit("seconds", 0, 60, open_low=True)  # what the app renders; a service may allow less
SIDE = Limit("width", 16, 4096, integer=True, multiple_of=16)
PROMPT_CHARS = Limit("prompt", 1, 2000, integer=True)
STRENGTH = Limit("strength", 0, 1, open_low=True)
EDIT_SECONDS = Limit("seconds", 0, 10)  # a loop's bridge, a blend's transition
RANGE_SECONDS = Limit("ranges", 0, 3600)  # a re-cut range or an insertion point, in source seconds
CARDS = Limit("cards", 1, 12, integer=True)


def check_text(value: object, *, name: str, max_chars: int | None = None) -> str:
    """Text a person wrote: a string of valid Unicode (no lone surrogates, no NUL), not too long.

    A lone surrogate cannot be encoded as UTF-8, so a prompt holding one could be stored but
    never served back or tokenized; NUL ends strings in C libraries downstream.
    """
    if not isinstance(value, str):
        raise InvalidParameter(name, value, "a text")
    if "\x00" in value:
        raise InvalidParameter(name, "text with a NUL character", "text without NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameter(name, "text with a lone UTF-16 surrogate", "valid Unicode text") from None
    limit = int(PROMPT_CHARS.high) if max_chars is None else max_chars
    if len(value) > limit:
        raise InvalidParameter(name, f"{len(value)} characters", f"at most {limit}")
    return value
