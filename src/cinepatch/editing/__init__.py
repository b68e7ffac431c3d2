"""Sora's edits as short functions over one primitive.

Every edit pins known frames in time (:class:`~cinepatch.backends.base.Keyframes`) — and remix
also hands over a source to re-noise — and lets the backend fill in the rest; long work is cut
into overlapping windows. No edit adds model code, so each works on every backend that honours
keyframes.

``plan(edit, spec, inputs, params, …)`` validates everything before any compute and returns a
:class:`Plan` whose ``run(backend)`` makes the frames.

| edit | sources | params |
|---|---|---|
| None (text-to-video) | — | — |
| ``image`` | one image | ``at``: ``start`` / ``end`` / seconds |
| ``extend`` | one video | ``seconds``, ``direction``: ``forward`` / ``backward`` |
| ``remix`` | one video | ``strength`` 0..1 (default 0.7) |
| ``recut`` | one video | ``ranges`` ``[[start, end], …]`` s, ``at`` s |
| ``loop`` | none or one video | ``bridge`` s (default 1) |
| ``blend`` | two videos (join) / none or one (mix) | ``mode`` ``join``/``mix``, ``transition`` s, ``with`` |
| ``storyboard`` | the cards' images/clips | ``cards`` ``[{at, prompt, source, seconds}, …]`` |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cinepatch.backends.base import GenerationSpec
from cinepatch.editing.blend import blend
from cinepatch.editing.conform import conform, fit_frames, resample_fps
from cinepatch.editing.extend import extend
from cinepatch.editing.image import image_to_video
from cinepatch.editing.loop import loop
from cinepatch.editing.plan import Plan
from cinepatch.editing.recut import recut
from cinepatch.editing.remix import remix
from cinepatch.editing.scenes import Planning
from cinepatch.editing.storyboard import read_storyboard, storyboard
from cinepatch.editing.text import text_to_video
from cinepatch.errors import InvalidParameter
from cinepatch.io.video import Video, read_media

__all__ = ["Plan", "Planning", "plan", "load_sources", "conform", "fit_frames", "resample_fps", "read_storyboard"]

MAX_SOURCE_BYTES = 512 * 1024**2
MAX_SOURCE_PIXELS = 2**29  # decoded frames × width × height: 1.5 GiB of RGB at most


def load_sources(paths: Sequence[Path]) -> list[Video]:
    """Read every source image/video (raising MediaError naming a bad file, or one that would
    decode to more than MAX_SOURCE_PIXELS — a small file of long, large frames)."""
    return [read_media(path, max_bytes=MAX_SOURCE_BYTES, max_pixels=MAX_SOURCE_PIXELS) for path in paths]


def plan(
    edit: str | None,
    spec: GenerationSpec,
    inputs: list[Video],
    params: Mapping[str, object],
    *,
    window: int | None,
    latent_step: int,
    prompt: str = "",
    expand: Callable[[str], str] = lambda text: text,
    planning: Planning | None = None,
) -> Plan:
    """The passes that make ``edit`` of ``spec``; ``window`` is the backend's frames per pass
    and ``latent_step`` its frames per latent frame (see :class:`Backend`), ``prompt`` the
    words the person wrote and ``expand`` the prompt expander (for edits that bring prompts
    of their own). ``planning`` (for a backend that reads scene plans) makes every pass carry
    its window of the output's plan, returned as ``Plan.scene`` (see :mod:`.scenes`)."""
    if edit is None:
        if inputs:
            raise InvalidParameter("sources", len(inputs), "none for text-to-video (name an edit)")
        return text_to_video(spec, window=window, latent_step=latent_step, planning=planning)
    if edit == "image":
        return image_to_video(spec, inputs, params, window=window, latent_step=latent_step, planning=planning)
    if edit == "extend":
        return extend(spec, inputs, params, window=window, latent_step=latent_step, planning=planning)
    if edit == "remix":
        return remix(spec, inputs, params, window=window, planning=planning)
    if edit == "recut":
        return recut(spec, inputs, params, window=window, latent_step=latent_step, planning=planning)
    if edit == "loop":
        return loop(spec, inputs, params, window=window, latent_step=latent_step, planning=planning)
    if edit == "blend":
        return blend(spec, inputs, params, window=window, latent_step=latent_step, prompt=prompt or spec.prompt, expand=expand,
                     planning=planning)
    if edit == "storyboard":
        return storyboard(spec, inputs, params, window=window, latent_step=latent_step, expand=expand, planning=planning)
    raise InvalidParameter("edit", edit, "image, extend, remix, recut, loop, blend or storyboard")
