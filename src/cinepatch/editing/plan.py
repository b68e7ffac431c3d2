"""The primitive every edit is built from, and the plan an edit returns.

An edit never touches a model. It pins known frames in time (:class:`Keyframes`), optionally
hands over a source to re-noise (remix), and cuts long work into windows that overlap by a
context of already-made frames. :class:`Plan` carries the passes' shapes — checked against the
backend before any compute — and the function that runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from cinepatch.backends.base import Backend, GenerationSpec, Keyframes, Progress
from cinepatch.editing.scenes import window as plan_window
from cinepatch.errors import InvalidParameter

if TYPE_CHECKING:
    from cinepatch.planning import ScenePlan

__all__ = [
    "Plan",
    "pinned",
    "context_length",
    "window_length",
    "continue_video",
    "Continuation",
    "whole_groups",
    "DEFAULT_WINDOW_SECONDS",
]

DEFAULT_WINDOW_SECONDS = 4.0  # pass length for backends that set no limit of their own
CONTEXT_SECONDS = 1.0  # how much already-made video each new window sees


@dataclass(frozen=True)
class Plan:
    """The passes an edit needs (their shapes, for checking) and how to run them."""

    specs: tuple[GenerationSpec, ...]
    runner: Callable[[Backend, Progress], np.ndarray]
    warnings: tuple[str, ...] = ()
    scene: ScenePlan | None = None  # the output's scene plan, when the backend reads plans
    cyclic: bool = False  # the output plays round: its last frame leads into its first (a loop)

    def run(self, backend: Backend, *, progress: Progress) -> np.ndarray:
        return self.runner(backend, progress)


def pinned(spec: GenerationSpec, frames: np.ndarray, indices: range | list[int]) -> GenerationSpec:
    """``spec`` with ``frames`` pinned at output frame ``indices``."""
    return replace(spec, keyframes=Keyframes(frames=np.asarray(frames), indices=tuple(indices)))


def placeholder(spec: GenerationSpec, count: int, indices: list[int]) -> GenerationSpec:
    """A spec with the shape of a future pass (keyframes not yet made), for ``check``."""
    blank = np.zeros((count, spec.height, spec.width, 3), dtype=np.uint8)
    return pinned(spec, blank, indices)


# The backend's ``latent_step`` (its VAE's frames per latent frame, see Backend) is the group
# edits pin in: a pinned run of ``1 + k·latent_step`` frames at a pass's start fills whole latent
# frames, so the model is never given a latent frame it knows only part of.


def window_length(backend_limit: int | None, fps: int, latent_step: int) -> int:
    """Frames per pass: the backend's limit, or DEFAULT_WINDOW_SECONDS when it sets none."""
    if backend_limit is not None:
        return backend_limit
    return 1 + latent_step * round(DEFAULT_WINDOW_SECONDS * fps / latent_step)


def context_length(fps: int, window: int, latent_step: int, *, sides: int = 1) -> int:
    """Frames of context a pass sees on each pinned side: about a second, ``1 + k·latent_step``
    (whole latent groups), and at most half of what the window leaves for each side, so new
    frames always fit (a window too short for one group sees a single frame)."""
    k = max(1, round(CONTEXT_SECONDS * fps / latent_step))
    k = min(k, max(0, (window - 2) // (2 * latent_step * sides)))
    return 1 + latent_step * k


def whole_groups(frames: int, latent_step: int) -> int:
    """The longest ``1 + k·latent_step`` that is at most ``frames`` (at least 1)."""
    return 1 + latent_step * ((frames - 1) // latent_step)


def latent_aligned(frames: int, latent_step: int) -> int:
    """``frames`` rounded up to whole latent groups, so a pinned tail starts a group."""
    return latent_step * max(1, -(-frames // latent_step))


def check_length(frames: int, fps: int, *, what: str = "the result") -> None:
    """Refuse an edit whose output would be longer than a minute, before any compute."""
    from cinepatch.app import MAX_SECONDS

    if frames > MAX_SECONDS * fps:
        raise InvalidParameter("seconds", f"{what}: {frames / fps:g}", f"at most {MAX_SECONDS:g} in all")



def _on_grid(frames: int, step: int) -> int:
    """The smallest ``1 + step·k`` at least ``frames`` (the backend's frame grid)."""
    return frames if step <= 1 else 1 + step * -(-(frames - 1) // step)


@dataclass(frozen=True)
class Continuation:
    """What :func:`continue_video` made: the ``new`` frames, and with ``release`` the redrawn
    ``end`` of the video (its last ``len(end)`` frames) and ``opening`` of the tail (its first
    ``len(opening)``), each to take the place of the frames it redraws (empty without)."""

    new: np.ndarray
    end: np.ndarray
    opening: np.ndarray

    def after(self, video: np.ndarray) -> np.ndarray:
        """``video`` with its end redrawn, then the new frames."""
        return np.concatenate([video[: len(video) - len(self.end)], self.end, self.new])


def handover(context: int) -> tuple[float, ...]:
    """Release levels for a context of ``context`` frames handing over to new ones: the first
    pinned (0), the rest rising evenly towards 1 (``k/context``)."""
    return tuple(k / context for k in range(context))


def _mixed(kept: np.ndarray, redrawn: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Each kept frame and its redraw mixed by its release level (0: the kept frame)."""
    w = np.asarray(levels, np.float32)[:, None, None, None]
    return np.rint((1 - w) * kept.astype(np.float32) + w * redrawn.astype(np.float32)).astype(np.uint8)


def continue_video(
    backend: Backend,
    spec: GenerationSpec,
    video: np.ndarray,
    new_frames: int,
    *,
    window: int,
    progress: Progress,
    tail: np.ndarray | None = None,
    scene: ScenePlan | None = None,
    release: bool = False,
) -> Continuation:
    """Make ``new_frames`` frames that follow ``video``, window by window (memory stays flat).

    Each window sees the last ``context`` frames made so far (whole latent groups), pinned at
    its start. With ``tail``, the last window also pins those frames at its end, so the new part
    leads into them (loops, blends); the returned frames exclude both the context and ``tail``.
    Each pass is made on the backend's frame grid (``frame_step``) and cut to what is needed.
    With ``scene`` — the plan of ``video`` followed by the new frames, and by ``tail``'s frames
    when given — each pass is given the window of it that the pass makes (else no plan).

    With ``release``, the first pass releases its context after the first frame gradually
    (:class:`Keyframes` ``release`` rising from 0 towards 1 across it), and ``end`` holds those
    frames, each the video's frame and the model's redraw of it mixed in the same proportion:
    the video hands over to the new frames across its last second instead of at one joint.
    With a ``tail`` too, the last pass releases the tail the same way, falling to 0 at its last
    frame, and ``opening`` holds the tail's first frames so mixed.
    """
    step, group = backend.frame_step, backend.latent_step
    context = context_length(spec.fps, window, group, sides=1 if tail is None else 2)
    pinned_tail = 0 if tail is None else len(tail)
    room = window - context - pinned_tail
    if room < 1:
        raise InvalidParameter("window", window, f"more than {context + pinned_tail} frames (context and tail)")
    made: list[np.ndarray] = []
    end = opening = video[:0]  # the redrawn end of ``video`` and opening of ``tail`` (with ``release``)
    remaining = new_frames
    history = video
    passes = max(1, -(-new_frames // room))
    done = 0
    while remaining > 0:
        ctx = history[-min(context, whole_groups(len(history), group)):]
        last = tail is not None and remaining <= room
        # keep room for the tail in every pass, so the last one always fits it
        take = min(remaining, window - len(ctx) - pinned_tail)
        total = _on_grid(len(ctx) + take + (pinned_tail if last else 0), step)
        if last:
            take = total - len(ctx) - pinned_tail  # the grid's extra frames lengthen the bridge
            frames = np.concatenate([ctx, tail])
            indices = list(range(len(ctx))) + list(range(total - pinned_tail, total))
        else:
            frames, indices = ctx, list(range(len(ctx)))
        start = len(video) + (new_frames - remaining) - len(ctx)  # the pass's first frame in ``scene``
        step_spec = pinned(replace(spec, frames=total, plan=plan_window(scene, start, total)), frames, indices)
        lead = handover(len(ctx)) if release and done == 0 else (0.0,) * len(ctx)
        back = tuple(reversed(handover(pinned_tail))) if release and last else (0.0,) * (len(indices) - len(ctx))
        if release:
            step_spec = replace(step_spec, keyframes=replace(step_spec.keyframes, release=lead + back))
        out = backend.generate(step_spec, progress=lambda f, d=done: progress(min(1.0, (d + f) / passes)))
        k = sum(level > 0 for level in lead)
        if k:
            end = _mixed(ctx[len(ctx) - k :], out[len(ctx) - k : len(ctx)], lead[len(ctx) - k :])
        new = out[len(ctx) : len(ctx) + take]
        made.append(new)
        k = sum(level > 0 for level in back)
        if k:
            opening = _mixed(tail[:k], out[total - pinned_tail : total - pinned_tail + k], back[:k])
        history = np.concatenate([history[-context:], new])
        remaining = 0 if last else remaining - take
        done += 1
    return Continuation(new=np.concatenate(made) if made else video[:0], end=end, opening=opening)
