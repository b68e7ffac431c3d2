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
from cinepatch.world.render import BOUNCE_RESTITUTION

__all__ = [
    "Planning",
    "window",
    "reversed_plan",
    "continued",
    "joined",
    "looped",
    "cycled",
    "entered",
    "animated",
    "remixed",
    "fitted",
    "carried",
]

CONTINUE_SECONDS = 1.0  # how much of a clip's end an extension reads the velocity from
_MIN_FALL = 0.005  # canvas heights per frame: a slower descent that turns is reading noise, not a bounce
_MIN_GRAVITY = 0.002  # canvas heights per frame²: a weaker pull is no fall


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


def cycled(plan: ScenePlan | None, count: int) -> ScenePlan | None:
    """A loop's plan played on into its next round: ``plan`` followed by its first ``count``
    frames (what a loop's bridge leads into), or None."""
    if plan is None:
        return None
    at = np.arange(plan.frames + count) % plan.frames
    objects = [replace(obj, boxes=tuple(obj.boxes[i] for i in at)) for obj in plan.objects]
    return _with_objects(plan, objects, len(at))


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


def continued(plan: ScenePlan, new: int, *, backwards: bool = False) -> ScenePlan:
    """``plan`` followed by ``new`` frames in which every object keeps the velocity it had over
    the plan's last CONTINUE_SECONDS (a track that leaves the canvas parks just outside it); an
    object that bounces keeps bouncing (:func:`_bounced`).

    ``backwards``: ``plan`` is a clip played backwards (an extension backwards, a re-cut's
    lead-in), so each earlier bounce was higher, not lower."""
    frames = plan.frames
    speed = _end_speeds(plan)  # (N, 4) per frame
    steps = np.arange(1, new + 1)[:, None]
    restitution = 1 / BOUNCE_RESTITUTION if backwards else BOUNCE_RESTITUTION
    objects = []
    for obj, v in zip(plan.objects, speed, strict=True):
        ahead = obj.track[-1] + steps * v[None, :]
        heights = _bounced(obj.track, new, restitution=restitution)
        if heights is not None:
            ahead[:, [1, 3]] += (heights - (ahead[:, 1] + ahead[:, 3]) / 2)[:, None]
        objects.append(replace(obj, boxes=obj.boxes + _tuples(_parked(ahead))))
    return _with_objects(plan, objects, frames + new)


def _bounced(track: np.ndarray, new: int, *, restitution: float) -> np.ndarray | None:
    """The centre height of ``track``'s box over ``new`` more frames if the track bounces: it
    falls under the gravity measured on its flights and rebounds from the lowest point it
    reached, with ``restitution`` of its speed (the world's bounce); None if it shows no bounce
    (no fall that turns into a rise at the bottom of its path, under a steady pull down)."""
    y = (track[:, 1] + track[:, 3]) / 2
    if len(y) < 5:
        return None
    v = np.diff(y)  # v[k]: frame k -> k+1
    floor = float(y.max())
    turns = np.nonzero((v[:-1] > _MIN_FALL) & (v[1:] < 0))[0] + 1  # frames where a fall turns into a rise
    impacts = [k for k in turns if y[k] >= floor - max(v[k - 1], -v[k])]
    if not impacts:
        return None
    accel = np.diff(v)  # accel[k]: around frame k+1
    flight = np.ones(len(accel), bool)
    for k in impacts:
        flight[max(0, k - 2) : k + 1] = False  # the second differences that span an impact
    gravity = float(np.median(accel[flight])) if flight.any() else 0.0
    if gravity < _MIN_GRAVITY:
        return None
    height, speed = float(y[-1]), float(v[-1]) + gravity / 2  # speed at the last frame
    heights = np.empty(new)
    for n in range(new):
        height, speed = height + speed + gravity / 2, speed + gravity
        if height > floor:  # the impact: reflected, slower (or faster, run backwards)
            height, speed = floor - (height - floor) * restitution, -speed * restitution
            if -speed < 2 * gravity:  # too slow to leave the floor: at rest on it
                height, speed = floor, 0.0
        heights[n] = height
    return heights


def looped(plan: ScenePlan, bridge: int) -> ScenePlan:
    """``plan`` followed by ``bridge`` frames that bring every object back to its first box, so
    the result ends where it starts. An object still on the canvas goes straight back; one that
    has left comes back in the way it first moved — from where its opening's motion, run back,
    leaves the canvas (or the nearest edge, if it did not move), arriving at its opening's speed
    (:func:`_bridge`) — not back across the canvas against its own motion."""
    t = (np.arange(1, bridge + 1) / (bridge + 1))[:, None]
    objects = []
    for obj, v in zip(plan.objects, _start_speeds(plan), strict=True):
        first, last = obj.track[0], obj.track[-1]
        if _on_canvas(last) or not _on_canvas(first):
            between = last + t * (first - last)
        else:
            steps = _steps_off(first, v)
            start = _offstage(first) if steps is None else first - max(steps, bridge + 1) * v
            between = _bridge(start, (first - start) / (bridge + 1), first, v, bridge)
        objects.append(replace(obj, boxes=obj.boxes + _tuples(_parked(between))))
    return _with_objects(plan, objects, plan.frames + bridge)


def entered(plan: ScenePlan, before: int) -> ScenePlan:
    """``before`` frames with nothing on the canvas, then ``plan``: every object on the canvas
    at ``plan``'s start first comes in, the way its opening's motion run back leaves the canvas
    (or over the nearest edge, if it does not move), arriving at its opening's speed, and then
    follows its track — late by the frames it took to come in (at most half of ``plan``)."""
    objects = []
    for obj, v in zip(plan.objects, _start_speeds(plan), strict=True):
        track = obj.track
        first = track[0]
        if not _on_canvas(first):
            boxes = np.concatenate([np.repeat(first[None], before, 0), track])
        else:
            steps = _steps_off(first, v)
            start = _offstage(first) if steps is None else first - steps * v
            late = max(1, min(steps or plan.canvas.fps, plan.frames // 2))
            way = _bridge(start, (first - start) / late, first, v, late - 1)
            boxes = np.concatenate([np.repeat(start[None], before + 1, 0), way, track[: plan.frames - late]])
        objects.append(replace(obj, boxes=_tuples(_parked(boxes))))
    return _with_objects(plan, objects, before + plan.frames)


def _steps_off(box: np.ndarray, speed: np.ndarray) -> int | None:
    """How many frames of ``speed`` (box units per frame), run back, take ``box`` wholly off the
    canvas; None if it stays on it (a still object) until it passes BOX_LIMITS."""
    low, high = BOX_LIMITS
    for steps in range(1, 1000):
        back = box - steps * speed
        if back.min() < low or back.max() > high:
            return None
        if not _on_canvas(back):
            return steps
    return None


def joined(first: ScenePlan, second: ScenePlan, bridge: int) -> ScenePlan:
    """``first``, ``bridge`` frames, then ``second``: an object in both (the same colour and shape)
    moves from its last box in ``first`` to its first box in ``second`` and takes ``second``'s
    words; one only in ``first`` leaves through the nearest edge, one only in ``second`` enters
    through its nearest edge. Every path across the bridge leaves and arrives at the speeds of
    the clips it joins (:func:`_bridge`). At most three objects (``first``'s are kept first)."""
    total = first.frames + bridge + second.frames
    ends, starts = _end_speeds(first), _start_speeds(second)
    objects: list[PlanObject] = []
    matched: set[int] = set()
    for obj, v_end in zip(first.objects, ends, strict=True):
        end = obj.track[-1]
        other = _match(obj, second.objects, matched)
        if other is not None:
            matched.add(other)
            later = second.objects[other].track
            between = _bridge(end, v_end, later[0], starts[other], bridge)
            boxes = np.concatenate([obj.track, between, later])
            objects.append(replace(second.objects[other], boxes=_tuples(_parked(boxes))))
        else:
            out = _offstage(end)
            gone = _bridge(end, v_end, out, (out - end) / (bridge + 1), bridge)  # leaves at its mean pace
            boxes = np.concatenate([obj.track, gone, np.repeat(out[None], second.frames, 0)])
            objects.append(replace(obj, boxes=_tuples(_parked(boxes))))
    for n, obj in enumerate(second.objects):
        if n in matched:
            continue
        start = obj.track[0]
        out = _offstage(start)
        coming = _bridge(out, (start - out) / (bridge + 1), start, starts[n], bridge)
        boxes = np.concatenate([np.repeat(out[None], first.frames, 0), coming, obj.track])
        objects.append(replace(obj, boxes=_tuples(_parked(boxes))))
    return replace(_with_objects(first, objects[:3], total), background=second.background, camera=second.camera)


def _bridge(start: np.ndarray, start_speed: np.ndarray, end: np.ndarray, end_speed: np.ndarray, frames: int) -> np.ndarray:
    """``frames`` boxes strictly between ``start`` and ``end`` on a cubic (Hermite) path that
    leaves ``start`` at ``start_speed`` and reaches ``end`` at ``end_speed`` (box units per
    frame), so the motion does not jolt where the bridge meets the frames on either side.

    Each coordinate keeps an end's speed only as far as it goes the bridge's way and up to three
    times the bridge's mean pace (a monotone cubic, Fritsch and Carlson's condition): the path
    never turns back, which would take it faster through the middle than a straight bridge."""
    span = frames + 1
    pace = (end - start) / span
    start_speed, end_speed = (np.clip(np.where(v * pace > 0, v, 0.0), -3 * np.abs(pace), 3 * np.abs(pace)) for v in (start_speed, end_speed))
    t = (np.arange(1, span) / span)[:, None]
    h00, h10, h01, h11 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t, 3 * t**2 - 2 * t**3, t**3 - t**2
    return h00 * start + h10 * span * start_speed + h01 * end + h11 * span * end_speed


def _end_speeds(plan: ScenePlan) -> np.ndarray:
    """Each object's box velocity ``(N, 4)`` over the plan's last CONTINUE_SECONDS."""
    return velocities(plan, first=max(0, plan.frames - round(CONTINUE_SECONDS * plan.canvas.fps)), last=plan.frames - 1)


def _start_speeds(plan: ScenePlan) -> np.ndarray:
    """Each object's box velocity ``(N, 4)`` over the plan's first CONTINUE_SECONDS."""
    return velocities(plan, first=0, last=min(plan.frames, round(CONTINUE_SECONDS * plan.canvas.fps)) - 1)


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


def _on_canvas(box: np.ndarray) -> bool:
    """Whether any of ``box`` lies on the canvas."""
    x0, y0, x1, y1 = box
    return bool(x1 > 0 and x0 < 1 and y1 > 0 and y0 < 1)


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
