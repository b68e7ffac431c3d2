"""Buckets: the (width, height, frames) shapes a training batch can take.

Every batch is drawn from one bucket, so clips of mixed aspect ratios and durations (and still
images, ``frames=1``) train side by side without padding or cropping to one shape.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from cinepatch.errors import InvalidParameter

__all__ = ["Bucket", "parse_bucket", "parse_buckets", "assign_bucket"]


@dataclass(frozen=True, order=True)
class Bucket:
    """One batch shape: ``width`` × ``height`` pixels, ``frames`` frames (1 + 4k; 1 is an image)."""

    width: int
    height: int
    frames: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.frames}"

    @property
    def is_image(self) -> bool:
        return self.frames == 1

    @property
    def aspect(self) -> float:
        return self.width / self.height


def parse_bucket(text: str, *, multiple: int = 16) -> Bucket:
    """``"48x32x17"`` → ``Bucket(48, 32, 17)``; sizes a multiple of ``multiple``, frames 1 + 4k."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise InvalidParameter("bucket", text, "WIDTHxHEIGHTxFRAMES, e.g. 48x32x17")
    width, height, frames = (int(p) for p in parts)
    if width <= 0 or height <= 0 or width % multiple or height % multiple:
        raise InvalidParameter("bucket", text, f"width and height positive multiples of {multiple}")
    if frames < 1 or (frames - 1) % 4:
        raise InvalidParameter("bucket", text, "frames 1 + 4k (1, 5, 9, 13, 17, …)")
    return Bucket(width, height, frames)


def parse_buckets(texts: Iterable[str], *, multiple: int = 16) -> list[Bucket]:
    buckets = [parse_bucket(t, multiple=multiple) for t in texts]
    if not buckets:
        raise InvalidParameter("buckets", (), "at least one WIDTHxHEIGHTxFRAMES")
    if len(set(buckets)) != len(buckets):
        raise InvalidParameter("buckets", [str(b) for b in buckets], "no bucket listed twice")
    return buckets


def assign_bucket(
    width: int, height: int, frames: int, buckets: Iterable[Bucket], *, stride: int = 1
) -> Bucket | None:
    """The bucket a clip of ``frames`` frames (sampled every ``stride``) at ``width``×``height``
    fits best: the longest bucket the clip can fill, then the closest aspect ratio, then the
    largest area that is not an upscale. ``None`` when no bucket fits (e.g. an image and no
    image bucket)."""
    usable = [b for b in buckets if (b.frames - 1) * stride + 1 <= frames]
    if frames > 1:
        usable = [b for b in usable if not b.is_image] or usable
    if not usable:
        return None

    def rank(b: Bucket) -> tuple[float, float, float]:
        aspect_error = abs(math.log(b.aspect) - math.log(width / height))
        upscale = max(b.width / width, b.height / height)
        return (-b.frames, round(aspect_error, 3), (upscale > 1.0) * upscale - b.width * b.height)

    return min(usable, key=rank)
