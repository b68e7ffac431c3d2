"""The scene plan of each edit's output, made from its sources and its prompt.

A backend that reads plans (``takes_plan``) is told where every object is on every frame of an
edit, not only which frames are pinned: the sources are read back into plans
(:mod:`cinepatch.editing.reading`), the prompt is planned by the app's planner, and each edit
combines them — an extension continues the tracks read in the clip's last second, a loop's bridge
runs the tracks back to where they started, a remix keeps the source's tracks under the new
prompt's words. A person's own plan of the output (``Planning.user``) replaces all of this.

Every pass is then given the window of the output's plan that it makes (:func:`window`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from cinepatch.editing.reading import read_frames, velocities
from cinepatch.planning.schema import BOX_LIMITS, Canvas, PlanObject, ScenePlan

__all__ = [
    "Planning",
    "window",
    "reversed_plan",
    "continued",
    "joined",
    "looped",
    "animated",
    "remixed",
    "fitted",
    "carried",
]

CONTINUE_SECONDS = 1.0  # how much of a clip's end an extension reads the velocity from


@dataclass(frozen=True)
class Planning:
    """What an edit plans with, for a backend that reads plans.

    ``prompt`` is the planner's plan of the request's prompt on the output canvas (None when it
    cannot be planned); ``user`` a person's plan of the whole output, followed as given (fitted
    to the output's length); ``plan_text`` plans another prompt (a mix's second prompt, a
    storyboard card) over a number of frames.
    """

    prompt: ScenePlan | None = None
    user: ScenePlan | None = None
    plan_text: Callable[[str, int], ScenePlan | None] = lambda text, frames: None


def fitted(plan: ScenePlan, frames: int) -> ScenePlan:
    """``plan`` over ``frames`` frames (the same motion in normalised time)."""
    return plan if plan.frames == frames else plan.resampled(frames=frames)


def window(plan: ScenePlan | None, start: int, count: int) -> ScenePlan | None:
    """Frames ``start .. start+count-1`` of ``plan`` (boxes held past either end), or None."""
    if plan is None:
        return None
    at = np.clip(np.arange(start, start + count), 0, plan.frames - 1)
    objects = [replace(obj, boxes=tuple(obj.boxes[i] for i in at)) for obj in plan.objects]
    # An object wholly off the canvas in this window is not in the window's plan.
    objects = [obj for obj in objects if ((obj.track[:, 2] > 0) & (obj.track[:, 0] < 1) & (obj.track[:, 3] > 0) & (obj.track[:, 1] < 1)).any()]
    return _with_objects(plan, objects, count) if objects else None


def reversed_plan(plan: ScenePlan | None) -> ScenePlan | None:
    """``plan`` played backwards (what a backwards extension continues)."""
    if plan is None:
        return None
    return _with_objects(plan, [replace(obj, boxes=obj.boxes[::-1]) for obj in plan.objects], plan.frames)


def read(frames: np.ndarray, fps: int) -> tuple[ScenePlan | None, tuple[str, ...]]:
    """The plan ``frames`` show, and a warning when they show none (the edit then runs unplanned)."""
    reading = read_frames(frames, fps=fps)
    notes = tuple(f"{note}; the edit follows its sources alone" if reading.plan is None else note for note in reading.warnings)
    return reading.plan, notes


def continued(plan: ScenePlan, new: int) -> ScenePlan:
    """``plan`` followed by ``new`` frames in which every object keeps the velocity it had over
    the plan's last CONTINUE_SECONDS (a track that leaves the canvas parks just outside it)."""
    frames = plan.frames
    first = max(0, frames - round(CONTINUE_SECONDS * plan.canvas.fps))
    speed = velocities(plan, first=first, last=frames - 1)  # (N, 4) per frame
    steps = np.arange(1, new + 1)[:, None]
    objects = []
    for obj, v in zip(plan.objects, speed, strict=True):
        ahead = _parked(obj.track[-1] + steps * v[None, :])
        objects.append(replace(obj, boxes=obj.boxes + _tuples(ahead)))
    return _with_objects(plan, objects, frames + new)


def looped(plan: ScenePlan, bridge: int) -> ScenePlan:
    """``plan`` followed by ``bridge`` frames that carry every object from its last box back to
    its first, so the result ends where it starts."""
    t = (np.arange(1, bridge + 1) / (bridge + 1))[:, None]
    objects = []
    for obj in plan.objects:
        track = obj.track
        between = track[-1] + t * (track[0] - track[-1])
        objects.append(replace(obj, boxes=obj.boxes + _tuples(between)))
    return _with_objects(plan, objects, plan.frames + bridge)


def joined(first: ScenePlan, second: ScenePlan, bridge: int) -> ScenePlan:
    """``first``, ``bridge`` frames, then ``second``: an object in both (the same colour and shape)
    moves from its last box in ``first`` to its first box in ``second`` and takes ``second``'s
    words; one only in ``first`` leaves through the nearest edge, one only in ``second`` enters
    through its nearest edge. At most three objects (``first``'s are kept first)."""
    total = first.frames + bridge + second.frames
    t = (np.arange(1, bridge + 1) / (bridge + 1))[:, None]
    objects: list[PlanObject] = []
    matched: set[int] = set()
    for obj in first.objects:
        other = _match(obj, second.objects, matched)
        if other is not None:
            matched.add(other)
            end, start = obj.track[-1], second.objects[other].track[0]
            boxes = obj.track.tolist() + (end + t * (start - end)).tolist() + second.objects[other].track.tolist()
            objects.append(replace(second.objects[other], boxes=_tuples(np.asarray(boxes))))
        else:
            out = _offstage(obj.track[-1])
            gone = obj.track[-1] + t * (out - obj.track[-1])
            boxes = np.concatenate([obj.track, gone, np.repeat(out[None], second.frames, 0)])
            objects.append(replace(obj, boxes=_tuples(boxes)))
    for n, obj in enumerate(second.objects):
        if n in matched:
            continue
        out = _offstage(obj.track[0])
        coming = out + t * (obj.track[0] - out)
        boxes = np.concatenate([np.repeat(out[None], first.frames, 0), coming, obj.track])
        objects.append(replace(obj, boxes=_tuples(boxes)))
    return replace(_with_objects(first, objects[:3], total), background=second.background, camera=second.camera)


def animated(still: ScenePlan, prompt: ScenePlan | None, index: int, *, frames: int) -> ScenePlan:
    """The objects read in an image placed at frame ``index`` of ``prompt``'s canvas, each moving
    as the prompt moves the object of the same colour (its track shifted to pass through the
    image's box at ``index``, its width scaled as the prompt's grows or shrinks); an object the
    prompt does not name stays still. The prompt's other objects are added as the prompt plans them.
    Without a prompt plan every object stays still for ``frames`` frames."""
    if prompt is None:
        return _with_objects(still, [replace(o, boxes=o.boxes[:1] * frames) for o in still.objects], frames)
    prompt = fitted(prompt, frames)
    objects: list[PlanObject] = []
    matched: set[int] = set()
    for obj in still.objects:
        box = obj.track[0]
        other = _match(obj, prompt.objects, matched)
        if other is None:
            track = np.repeat(box[None], prompt.frames, 0)
        else:
            matched.add(other)
            track = _follow(prompt.objects[other].track, box, index)
        objects.append(replace(obj, boxes=_tuples(_parked(track))))
    objects += [obj for n, obj in enumerate(prompt.objects) if n not in matched]
    return replace(_with_objects(prompt, objects[:3], prompt.frames), background=still.background, occluders=still.occluders or prompt.occluders)


def remixed(source: ScenePlan, prompt: ScenePlan | None) -> ScenePlan:
    """The source's tracks and timing, in the new prompt's words: each source object takes the
    phrase and width of the prompt object it pairs with (the same colour, else the same shape,
    else the next in order), kept centred on the source's track; the background is the prompt's."""
    if prompt is None:
        return source
    objects: list[PlanObject] = []
    matched: set[int] = set()
    for obj in source.objects:
        other = _match(obj, prompt.objects, matched, loose=True)
        if other is None:
            objects.append(obj)
            continue
        matched.add(other)
        new = prompt.objects[other]
        track = obj.track
        centre = (track[:, :2] + track[:, 2:]) / 2
        half = (new.track[: len(track), 2:] - new.track[: len(track), :2]) / 2
        half = np.resize(half, (len(track), 2)) if len(half) != len(track) else half
        objects.append(replace(new, boxes=_tuples(_parked(np.concatenate([centre - half, centre + half], 1)))))
    return replace(_with_objects(source, objects, source.frames), background=prompt.background, camera=prompt.camera)


def _follow(track: np.ndarray, box: np.ndarray, index: int) -> np.ndarray:
    """``track``'s motion made to pass through ``box`` at ``index`` (centre shifted, width scaled)."""
    centre = (track[:, :2] + track[:, 2:]) / 2
    half = (track[:, 2:] - track[:, :2]) / 2
    scale = (box[2] - box[0]) / max(track[index, 2] - track[index, 0], 1e-6)
    shift = (box[:2] + box[2:]) / 2 - centre[index]
    return np.concatenate([centre + shift - half * scale, centre + shift + half * scale], 1)


def _words(phrase: str) -> tuple[str, str]:
    """(colour, shape) of a world phrase ``"SIZE COLOUR SHAPE"`` (empty when it has other words)."""
    words = phrase.split()
    return (words[-2], words[-1]) if len(words) >= 2 else ("", "")


def _match(obj: PlanObject, others: Sequence[PlanObject], taken: set[int], *, loose: bool = False) -> int | None:
    """The index of the object in ``others`` that ``obj`` is: the same colour and shape; with
    ``loose`` (a remix changes words), else the same colour, else the same shape, else the next."""
    colour, shape = _words(obj.phrase)
    free = [n for n in range(len(others)) if n not in taken]
    tests = [lambda o: _words(o.phrase) == (colour, shape)]
    if loose:
        tests += [lambda o: _words(o.phrase)[0] == colour, lambda o: _words(o.phrase)[1] == shape, lambda o: True]
    for test in tests:
        for n in free:
            if test(others[n]):
                return n
    return None


def _offstage(box: np.ndarray) -> np.ndarray:
    """``box`` moved just past the canvas edge nearest to it (wholly off the canvas)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    moves = {"left": (-x1, 0.0), "right": (1 - x0, 0.0), "up": (0.0, -y1), "down": (0.0, 1 - y0)}
    dx, dy = min(moves.values(), key=lambda d: abs(d[0]) + abs(d[1]))
    out = np.array([x0 + dx, y0 + dy, x1 + dx, y1 + dy])
    out[[0, 2]] += np.sign(dx) * 0.01 * (w > 0)
    out[[1, 3]] += np.sign(dy) * 0.01 * (h > 0)
    return _parked(out[None])[0]


def _parked(boxes: np.ndarray) -> np.ndarray:
    """Boxes ``(T, 4)`` shifted back inside BOX_LIMITS, keeping their size (never squashed)."""
    low, high = BOX_LIMITS
    boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    for lo, hi in ((0, 2), (1, 3)):
        over = np.maximum(boxes[:, hi] - high, 0) - np.maximum(low - boxes[:, lo], 0)
        boxes[:, lo] -= over
        boxes[:, hi] -= over
    return boxes


def _tuples(boxes: np.ndarray) -> tuple[tuple[float, float, float, float], ...]:
    return tuple(map(tuple, np.asarray(boxes, dtype=np.float64).reshape(-1, 4).tolist()))


def _with_objects(plan: ScenePlan, objects: Sequence[PlanObject], frames: int) -> ScenePlan:
    """``plan`` with new objects over ``frames`` frames (its canvas lengthened or shortened)."""
    canvas = Canvas(width=plan.canvas.width, height=plan.canvas.height, fps=plan.canvas.fps, frames=frames)
    return replace(plan, canvas=canvas, objects=tuple(objects))


def carried(previous: ScenePlan, plan: ScenePlan) -> ScenePlan:
    """``plan`` with every object that ``previous`` also holds (the same colour and shape) moved
    to start where it ended there: one object across two storyboard cards, not two."""
    objects = []
    taken: set[int] = set()
    for obj in plan.objects:
        other = _match(obj, previous.objects, taken)
        if other is None:
            objects.append(obj)
            continue
        taken.add(other)
        end = previous.objects[other].track[-1]
        objects.append(replace(obj, boxes=_tuples(_parked(_follow(obj.track, end, 0)))))
    return _with_objects(plan, objects, plan.frames)
