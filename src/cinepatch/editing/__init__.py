"""Edits as plans over one primitive: pixel keyframes pinned in time (and, for remix, a source
video re-noised to a strength). Each edit is a short function that turns a request into
:class:`~cinepatch.backends.base.GenerationSpec` passes; no edit adds model code.

``plan(edit, spec, inputs, params)`` validates everything before any compute and returns a
:class:`Plan`, whose ``run(backend)`` makes the frames.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cinepatch.backends.base import Backend, GenerationSpec, Keyframes, Progress
from cinepatch.errors import InvalidParameter
from cinepatch.io.video import Video, read_media

__all__ = ["Plan", "plan", "load_sources", "fit_frames"]

MAX_SOURCE_BYTES = 512 * 1024**2


def load_sources(paths: Sequence[Path]) -> list[Video]:
    """Read every source image/video (raising MediaError naming a bad file)."""
    return [read_media(path, max_bytes=MAX_SOURCE_BYTES) for path in paths]


def fit_frames(frames: np.ndarray, *, width: int, height: int) -> np.ndarray:
    """Resize frames to ``width``×``height`` by scaling to cover and centre-cropping.

    The choice (cover + centre crop, Lanczos) keeps the subject's proportions; it is stated in
    the edit's warnings whenever it changes the input.
    """
    from PIL import Image

    t, h, w, _ = frames.shape
    if (w, h) == (width, height):
        return frames
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    left, top = (new_w - width) // 2, (new_h - height) // 2
    out = np.empty((t, height, width, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        image = Image.fromarray(frame).resize((new_w, new_h), Image.Resampling.LANCZOS)
        out[i] = np.asarray(image)[top : top + height, left : left + width]
    return out


@dataclass(frozen=True)
class Plan:
    """The generation passes an edit needs, and how to run them."""

    specs: tuple[GenerationSpec, ...]
    runner: Callable[[Backend, Progress], np.ndarray]
    warnings: tuple[str, ...] = field(default=())

    def run(self, backend: Backend, *, progress: Progress) -> np.ndarray:
        return self.runner(backend, progress)


def _single(spec: GenerationSpec, warnings: tuple[str, ...] = ()) -> Plan:
    return Plan(
        specs=(spec,),
        runner=lambda backend, progress: backend.generate(spec, progress=progress),
        warnings=warnings,
    )


def _resized_note(name: str, source: Video, spec: GenerationSpec) -> tuple[str, ...]:
    width, height = source.size
    if (width, height) == (spec.width, spec.height):
        return ()
    return (
        f"{name} is {width}x{height}; it was scaled to cover {spec.width}x{spec.height} and "
        "centre-cropped",
    )


def _image_to_video(spec: GenerationSpec, inputs: list[Video], params: Mapping[str, object]) -> Plan:
    if len(inputs) != 1:
        raise InvalidParameter("sources", len(inputs), "exactly one image for image-to-video")
    at = params.get("at", "start")
    last = spec.frames - 1
    positions = {"start": 0, "end": last}
    if isinstance(at, str) and at in positions:
        index = positions[at]
    elif isinstance(at, (int, float)) and not isinstance(at, bool):
        index = round(float(at) * spec.fps)  # seconds from the start
        if not 0 <= index <= last:
            raise InvalidParameter("at", at, f"'start', 'end', or 0 to {last / spec.fps:g} seconds")
    else:
        raise InvalidParameter("at", at, "'start', 'end', or a time in seconds")
    image = fit_frames(inputs[0].frames[:1], width=spec.width, height=spec.height)
    keyframes = Keyframes(frames=image, indices=(index,))
    return _single(replace(spec, keyframes=keyframes), _resized_note("the image", inputs[0], spec))


def plan(
    edit: str | None, spec: GenerationSpec, inputs: list[Video], params: Mapping[str, object]
) -> Plan:
    """The passes that make ``edit`` (None: plain text-to-video) of ``spec``."""
    if edit is None:
        if inputs:
            raise InvalidParameter("sources", len(inputs), "none for text-to-video (name an edit)")
        return _single(spec)
    if edit == "image":
        return _image_to_video(spec, inputs, params)
    raise InvalidParameter("edit", edit, "text-to-video or 'image' in this build")
