"""The world planner (offline, the default) and the world's drawing of a plan.

Planning is the renderer's own :func:`~cinepatch.world.render.layout` — every placement rule,
bounce and pillar crossing — stopped before rasterising: each track's centre and size become a
box per frame. With the same (scene, seed) the plan is therefore exactly where the oracle draws,
and :func:`render_plan` (the oracle's drawing of a plan) turns the boxes back into the same
layout and pixels. A plan the user edited is drawn the same way: each object at its box's
centre, with the box's width as its size, its colour and shape read from its phrase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cinepatch.errors import InvalidParameter, UnknownPrompt
from cinepatch.planning.schema import BOX_LIMITS, Camera, Canvas, Occluder, PlanBackground, PlanObject, ScenePlan
from cinepatch.world.render import Layout, Track, layout, render_layout
from cinepatch.world.scene import PAN_SPEED, Background, Scene, SceneObject

__all__ = ["PlanResult", "WorldPlanner", "plan_prompt", "plan_from_scene", "phrase_of", "look_of", "render_plan"]


@dataclass(frozen=True)
class PlanResult:
    """What a planner made of a prompt: a plan, or ``None`` and the reason in ``warnings``."""

    plan: ScenePlan | None
    planner: str  # "world", "chat" or "user"
    warnings: tuple[str, ...] = ()


def phrase_of(obj: SceneObject) -> str:
    """The object's words in a plan: ``"SIZE COLOUR SHAPE"``, e.g. ``"small red circle"``."""
    return f"{obj.size} {obj.colour} {obj.shape}"


def plan_from_scene(scene: Scene, *, width: int, height: int, fps: int, frames: int, seed: int | None) -> ScenePlan:
    """The plan of ``scene``: where :func:`~cinepatch.world.render` draws it with ``seed``."""
    lay = layout(scene, width=width, height=height, fps=fps, frames=frames, seed=seed)
    n = len(scene.objects)
    objects = tuple(
        # The renderer draws later objects in front: the last object is the nearest (depth 0).
        PlanObject(phrase=phrase_of(obj), boxes=_track_boxes(track, width, height), depth=n - 1 - i)
        for i, (obj, track) in enumerate(zip(scene.objects, lay.tracks, strict=True))
    )
    occluders = ()
    if lay.pillar is not None:
        occluders = (Occluder(box=(lay.pillar[0] / width, 0.0, lay.pillar[1] / width, 1.0)),)
    texture = scene.background.texture
    return ScenePlan(
        canvas=Canvas(width=width, height=height, fps=fps, frames=frames),
        background=PlanBackground(colour=scene.background.colour, texture=None if texture == "none" else texture),
        camera=Camera(pan=None if scene.pan == "none" else scene.pan),
        objects=objects,
        occluders=occluders,
    )


def _track_boxes(track: Track, width: int, height: int) -> tuple[tuple[float, ...], ...]:
    half = track.size / 2
    x0, x1 = _parked((track.cx - half) / width, (track.cx + half) / width)
    y0, y1 = _parked((track.cy - half) / height, (track.cy + half) / height)
    return tuple(map(tuple, np.stack([x0, y0, x1, y1], axis=1).tolist()))  # (T, 4)


def _parked(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One axis of a track, with the frames on which the object is wholly off the canvas and
    past the format's limits moved back toward the edge (never onto the canvas): nothing of it
    is drawn on those frames either way, and the plan stays within BOX_LIMITS."""
    low, high = BOX_LIMITS
    lo, hi = lo.copy(), hi.copy()
    right = (lo >= 1) & (hi > high)
    shift = np.minimum(hi - high, lo - 1)[right]
    lo[right] -= shift
    hi[right] = np.minimum(hi[right] - shift, high)
    left = (hi <= 0) & (lo < low)
    shift = np.minimum(low - lo, -hi)[left]
    hi[left] += shift
    lo[left] = np.maximum(lo[left] + shift, low)
    return lo, hi


def _plan_or_reason(
    prompt: str, *, width: int, height: int, fps: int, frames: int, seed: int | None
) -> tuple[ScenePlan | None, str]:
    from cinepatch.world.parse import parse_prompt

    try:
        scene = parse_prompt(prompt)
        return plan_from_scene(scene, width=width, height=height, fps=fps, frames=frames, seed=seed), ""
    except (UnknownPrompt, InvalidParameter) as exc:
        return None, str(exc)


def plan_prompt(prompt: str, *, width: int, height: int, fps: int, frames: int, seed: int | None) -> ScenePlan | None:
    """Prompt → the world's parser → its motion rules → a plan; ``None`` outside the world
    (:class:`WorldPlanner` says why)."""
    return _plan_or_reason(prompt, width=width, height=height, fps=fps, frames=frames, seed=seed)[0]


class WorldPlanner:
    """The default planner: offline and deterministic for a (prompt, seed)."""

    name = "world"

    def plan(self, prompt: str, *, width: int, height: int, fps: int, frames: int, seed: int | None) -> PlanResult:
        plan, reason = _plan_or_reason(prompt, width=width, height=height, fps=fps, frames=frames, seed=seed)
        if plan is None:
            note = f"the world planner cannot plan this prompt: {reason}"
            return PlanResult(plan=None, planner=self.name, warnings=(note,))
        return PlanResult(plan=plan, planner=self.name)


# --- Drawing a plan ----------------------------------------------------------------------------


def look_of(phrase: str, *, where: str = "phrase") -> tuple[str, str]:
    """``(colour, shape)`` of one world object named by ``phrase`` (the parser's vocabulary,
    so "crimson ball" works); its size words are ignored — the box gives the size."""
    from cinepatch.world.parse import parse_prompt

    allowed = "one world object, e.g. 'small red circle' (a size, a colour and a shape)"
    try:
        scene = parse_prompt(phrase)
    except (UnknownPrompt, InvalidParameter):
        raise InvalidParameter(where, phrase, allowed) from None
    if len(scene.objects) != 1:
        raise InvalidParameter(where, phrase, allowed, hint=f"it names {len(scene.objects)} objects")
    return scene.objects[0].colour, scene.objects[0].shape


def plan_layout(plan: ScenePlan) -> tuple[Layout, list[int]]:
    """The renderer's :class:`Layout` of ``plan`` and the drawing order (farthest first)."""
    width, height, fps, frames = plan.canvas.width, plan.canvas.height, plan.canvas.fps, plan.canvas.frames
    # Stable sort: equal depths keep the plan's order, later in front, as the renderer does.
    order = sorted(range(len(plan.objects)), key=lambda n: -plan.objects[n].depth)
    tracks = []
    for n in order:
        box = plan.objects[n].track
        tracks.append(Track(cx=(box[:, 0] + box[:, 2]) / 2 * width, cy=(box[:, 1] + box[:, 3]) / 2 * height,
                            size=(box[:, 2] - box[:, 0]) * width))
    pillar = None
    if plan.occluders:
        pillar = (plan.occluders[0].box[0] * width, plan.occluders[0].box[2] * width)
    # WORLD.md: the texture shifts opposite to the pan (the same rule as Scene.pan_shift).
    shift = {None: 0.0, "left": PAN_SPEED, "right": -PAN_SPEED}[plan.camera.pan]
    lay = Layout(width=width, height=height, fps=float(fps), frames=frames, tracks=tuple(tracks), pillar=pillar,
                 texture_shift=shift * float(min(width, height)) * (np.arange(frames, dtype=np.float64) / fps))
    return lay, order


def render_plan(plan: ScenePlan) -> np.ndarray:
    """The world oracle's drawing of ``plan``: frames ``(T, H, W, 3)`` uint8."""
    looks = [look_of(obj.phrase, where=f"objects[{n}].phrase") for n, obj in enumerate(plan.objects)]
    lay, order = plan_layout(plan)
    background = Background(colour=plan.background.colour, texture=plan.background.texture or "none")
    return render_layout(lay, [looks[n] for n in order], background)
