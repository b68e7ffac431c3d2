"""Random scenes and their captions: the recaptioning data of the default model.

:func:`random_scene` draws scenes covering all of WORLD.md. :func:`captions` describes a
scene at three levels — ``terse`` (colour, shape, count, motion), ``medium`` (plus sizes,
speeds, entering/leaving, the pillar, background and camera) and ``dense`` (everything,
start positions included) — with varied synonyms and clause orders, every one of which
:func:`cinepatch.world.parse_prompt` reads back. :func:`dense_caption` is the one fixed
wording of the dense level, used to expand prompts at inference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from cinepatch.world.scene import (
    BACKGROUNDS,
    LINEAR_MOTIONS,
    MOTIONS,
    OBJECT_COLOURS,
    PILLAR_PLACES,
    POSITIONS,
    SHAPES,
    SIZES,
    TEXTURES,
    Background,
    Pillar,
    Scene,
    SceneObject,
)

__all__ = ["random_scene", "captions", "dense_caption", "CAPTION_LEVELS"]

CAPTION_LEVELS = ("terse", "medium", "dense")

# Wordings, first one canonical (dense_caption uses it). Each must parse back (tests check).
_COLOUR = {
    "red": ["red", "crimson", "scarlet"],
    "orange": ["orange", "tangerine", "amber"],
    "yellow": ["yellow", "golden", "lemon"],
    "green": ["green", "emerald", "lime"],
    "blue": ["blue", "cobalt", "azure"],
    "purple": ["purple", "violet", "lilac"],
    "pink": ["pink", "rose", "magenta"],
    "white": ["white", "ivory", "snowy"],
}
_SHAPE = {
    "circle": [("circle", "circles"), ("ball", "balls"), ("disc", "discs"), ("dot", "dots")],
    "square": [("square", "squares"), ("box", "boxes"), ("block", "blocks"), ("tile", "tiles")],
    "triangle": [("triangle", "triangles"), ("wedge", "wedges"), ("pyramid", "pyramids")],
}
_SIZE = {"small": ["small", "tiny", "little"], "medium": ["medium", "medium sized", "mid sized"],
         "large": ["large", "big", "huge"]}  # fmt: skip
# (singular subject, plural subject) wordings of each motion.
_MOTION = {
    "right": [("moves right", "move right"), ("drifts rightwards", "drift rightwards"),
              ("slides to the right", "slide to the right"), ("travels from left to right", "travel from left to right"),
              ("heads right", "head right")],
    "left": [("moves left", "move left"), ("drifts leftwards", "drift leftwards"),
             ("slides to the left", "slide to the left"), ("travels from right to left", "travel from right to left"),
             ("heads left", "head left")],
    "up": [("moves up", "move up"), ("rises", "rise"), ("floats upwards", "float upwards"), ("climbs", "climb")],
    "down": [("moves down", "move down"), ("sinks", "sink"), ("descends", "descend"),
             ("drifts downwards", "drift downwards")],
    "still": [("stays still", "stay still"), ("is motionless", "are motionless"),
              ("sits still", "sit still"), ("does not move", "do not move"), ("stays put", "stay put")],
    "bounce": [("bounces", "bounce"), ("falls and bounces", "fall and bounce"),
               ("bounces on the floor", "bounce on the floor")],
    "grow": [("grows", "grow"), ("expands", "expand"), ("gets bigger", "get bigger"), ("swells", "swell")],
    "shrink": [("shrinks", "shrink"), ("contracts", "contract"), ("gets smaller", "get smaller"),
               ("dwindles", "dwindle")],
}  # fmt: skip
_TERSE_MOTION = {
    "right": ["moving right", "drifting rightwards", "going right"],
    "left": ["moving left", "drifting leftwards", "going left"],
    "up": ["moving up", "rising", "floating upwards"],
    "down": ["moving down", "sinking", "descending"],
    "still": ["staying still", "motionless", "stationary"],
    "bounce": ["bouncing"],
    "grow": ["growing", "expanding"],
    "shrink": ["shrinking", "contracting"],
}
_SPEED = {"slow": ["slowly", "gently", "leisurely"], "normal": ["steadily", ""], "fast": ["quickly", "rapidly", "swiftly"]}
_EXIT = {
    "enters": [("and enters the frame", "and enter the frame"), ("and comes into view", "and come into view")],
    "leaves": [("and leaves the frame", "and leave the frame"), ("and goes out of view", "and go out of view")],
}
_BEHIND = [("and passes behind the pillar", "and pass behind the pillar"),
           ("and goes behind the pillar", "and go behind the pillar")]  # fmt: skip
_BACKGROUND = {
    "black": ["black", "jet black", "charcoal"],
    "gray": ["gray", "grey", "slate gray"],
    "navy": ["navy", "dark blue", "navy blue", "midnight blue"],
    "forest": ["forest green", "dark green"],
    "brown": ["brown", "dark brown", "chocolate"],
    "sky": ["sky blue", "light blue", "pale blue"],
}
_BG_NOUN = ["background", "backdrop"]
_TEXTURE = {"none": ["plain", "solid", ""], "striped": ["striped", "vertically striped"],
            "checkered": ["checkered", "chequered", "checkerboard"]}  # fmt: skip
_PILLAR_PLACE = {"center": ["at the center", "in the middle"], "left": ["on the left"], "right": ["on the right"]}
_PAN = {"left": ["the camera pans left", "the camera pans to the left", "the camera is panning left"],
        "right": ["the camera pans right", "the camera pans to the right", "the camera is panning right"],
        "none": ["the camera is static", "the camera stays still"]}  # fmt: skip
_COUNT = {1: "a", 2: "two", 3: "three"}

# --- Random scenes ---------------------------------------------------------------------------


def _start_for(motion: str, rng: np.random.Generator, *, avoid_col: int | None = None) -> str | None:
    """A named start consistent with the motion (a right mover starts on the left …).

    ``avoid_col`` is the column holding the pillar: an object started there would sit behind
    it. ``None`` when no column is left.
    """
    cols, rows = [0, 1, 2], [0, 1, 2]
    if motion == "right":
        cols = [0]
    elif motion == "left":
        cols = [2]
    elif motion == "up":
        rows = [2]
    elif motion == "down":
        rows = [0]
    elif motion == "bounce":
        rows = [0, 1]
    cols = [c for c in cols if c != avoid_col]
    if not cols:
        return None
    col, row = int(rng.choice(cols)), int(rng.choice(rows))
    return next(name for name, cr in POSITIONS.items() if cr == (col, row))


_FOOTPRINT_BUDGET = 0.20  # Σ (largest width)² over objects, in min(width, height)² units


def _footprint(obj: SceneObject) -> float:
    return (SIZES[obj.size] * (2.0 if obj.motion == "grow" else 1.0)) ** 2


def random_scene(
    rng: np.random.Generator,
    *,
    max_objects: int = 3,
    exits: bool = True,
    pillar: bool = True,
    pan: bool = True,
) -> Scene:
    """A random scene covering all of WORLD.md.

    ``exits=False`` keeps objects on canvas for the whole clip (use it for still images, where
    an entering object would be off-canvas on its only frame); ``pillar`` and ``pan`` allow
    those scene features.
    """
    weights = np.array([0.45, 0.35, 0.20][:max_objects])
    n = int(rng.choice(np.arange(1, max_objects + 1), p=weights / weights.sum()))
    has_pillar = pillar and rng.random() < 0.3
    place = str(rng.choice(list(PILLAR_PLACES), p=[0.2, 0.6, 0.2])) if has_pillar else None
    pillar_col = None if place is None else {"left": 0, "center": 1, "right": 2}[place]
    colours = list(rng.permutation(list(OBJECT_COLOURS)))
    # Objects must stay visible: the squares of their largest widths (a grower doubles) must
    # fit a budget of the canvas, or they end up hidden behind each other.
    budget = _FOOTPRINT_BUDGET - (0.05 if has_pillar else 0.0)
    objects: list[SceneObject] = []
    while len(objects) < n:
        if objects and rng.random() < 0.15 and budget >= _footprint(objects[-1]):
            # Twins: WORLD.md's "two red circles" — same colour and shape (and, here, motion).
            twin = objects[-1]
            objects.append(SceneObject(**{**twin.__dict__, "start": None}))
            budget -= _footprint(twin)
            continue
        for _ in range(20):
            motion, size = str(rng.choice(MOTIONS)), str(rng.choice(list(SIZES)))
            if _footprint(SceneObject("red", "circle", size, motion)) <= budget:
                break
        else:
            motion, size = "still", "small"
        budget -= _footprint(SceneObject("red", "circle", size, motion))
        linear = motion in LINEAR_MOTIONS
        speed = str(rng.choice(["slow", "normal", "fast"], p=[0.25, 0.5, 0.25])) if linear else "normal"
        behind = has_pillar and motion in ("left", "right") and rng.random() < 0.7
        if behind and speed == "slow":
            speed = "normal"  # slow movers may not clear the pillar in a short clip
        if behind and size == "large":
            size = "medium"  # beside an off-centre pillar there is no room for a large one
        exit_ = "none"
        if exits and linear and not behind and rng.random() < 0.15:
            exit_ = str(rng.choice(["enters", "leaves"]))
        start = None
        if not behind and exit_ != "enters" and rng.random() < 0.3:
            start = _start_for(motion, rng, avoid_col=pillar_col)
        objects.append(
            SceneObject(
                colour=str(colours.pop()),
                shape=str(rng.choice(SHAPES)),
                size=size,
                motion=motion,
                speed=speed,
                start=start,
                exit=exit_,
                behind_pillar=behind,
            )
        )
    # A pan against a pillar crosser would slow it on screen until it cannot clear the pillar;
    # only a pan that speeds every crosser up is allowed (camera pans left: content moves right).
    crossers = {o.motion for o in objects if o.behind_pillar}
    pans = {frozenset(): ["left", "right"], frozenset({"right"}): ["left"], frozenset({"left"}): ["right"]}.get(
        frozenset(crossers), []
    )
    pan_choice = str(rng.choice(pans)) if pan and pans and rng.random() < 0.25 else "none"
    return Scene(
        objects=tuple(objects),
        background=Background(
            colour=str(rng.choice(list(BACKGROUNDS))), texture=str(rng.choice(TEXTURES, p=[0.5, 0.25, 0.25]))
        ),
        pillar=None if place is None else Pillar(place=place),
        pan=pan_choice,
    )


# --- Captions --------------------------------------------------------------------------------


class _Pick:
    """Chooses a wording: the first (canonical) one, or a random one."""

    def __init__(self, rng: np.random.Generator | None) -> None:
        self.rng = rng

    def __call__(self, options: Sequence):  # noqa: ANN204 - returns an element of options
        if self.rng is None:
            return options[0]
        return options[int(self.rng.integers(len(options)))]

    def flip(self, p: float = 0.5) -> bool:
        return self.rng is not None and bool(self.rng.random() < p)


def _groups(scene: Scene, *, keep_start: bool) -> list[tuple[SceneObject, int]]:
    """Identical objects merged into (object, count); with start positions kept, never merged."""
    out: list[tuple[SceneObject, int]] = []
    for obj in scene.objects:
        key = obj if keep_start else SceneObject(**{**obj.__dict__, "start": None})
        if out and out[-1][0] == key and not (keep_start and obj.start is not None):
            out[-1] = (key, out[-1][1] + 1)
        else:
            out.append((key, 1))
    return out


def _object_phrase(obj: SceneObject, count: int, pick: _Pick, *, level: str) -> str:
    plural = count > 1
    noun = pick(_SHAPE[obj.shape])[1 if plural else 0]
    colour = pick(_COLOUR[obj.colour])
    if level == "terse":
        lead = f"{_COUNT[count]} " if plural else ""
        return f"{lead}{colour} {noun} {pick(_TERSE_MOTION[obj.motion])}"
    size = pick(_SIZE[obj.size])
    subject = f"{_COUNT[count]} {size} {colour} {noun}"
    if level == "dense" and count == 1 and obj.start is not None:
        corner = " corner" if " " in obj.start and pick.flip(0.3) else ""
        subject += f" {pick(['starting at the', 'starting in the', 'which starts at the'])} {obj.start}{corner}"
    verb = pick(_MOTION[obj.motion])[1 if plural else 0]
    if obj.motion in LINEAR_MOTIONS:
        speed = pick(_SPEED[obj.speed]) if level != "dense" or obj.speed != "normal" else ""
        if speed and pick.flip():
            verb = f"{speed} {verb}"
        elif speed:
            verb = f"{verb} {speed}"
    phrase = f"{subject} {verb}"
    if obj.exit != "none":
        phrase += " " + pick(_EXIT[obj.exit])[1 if plural else 0]
    if obj.behind_pillar:
        phrase += " " + pick(_BEHIND)[1 if plural else 0]
    return phrase


def _background_phrases(scene: Scene, pick: _Pick, *, level: str) -> tuple[str, str]:
    """The background as a leading phrase ("on a striped navy backdrop") and as a sentence."""
    colour = pick(_BACKGROUND[scene.background.colour])
    texture = scene.background.texture
    tex_word = pick(_TEXTURE[texture]) if level != "dense" or texture != "none" else "plain"
    noun = pick(_BG_NOUN)
    leading = " ".join(w for w in ("on a", tex_word, colour, noun) if w)
    tail = {"none": "", "striped": " with vertical stripes", "checkered": " with a checkerboard pattern"}[texture]
    if tail and pick.flip():
        sentence = f"the {noun} is {colour}{tail}"
    else:
        sentence = " ".join(w for w in (f"the {noun} is", tex_word, colour) if w)
    return leading, sentence


def _caption(scene: Scene, pick: _Pick, level: str) -> str:
    groups = _groups(scene, keep_start=level == "dense")
    parts = [_object_phrase(o, n, pick, level=level) for o, n in groups]
    if level == "terse":
        return " and ".join(parts)
    joiner = ". " if level == "dense" else pick([", and ", "; ", ". "])
    body = joiner.join(parts)
    extras: list[str] = []
    if scene.pillar is not None:
        extras.append(f"{pick(['a pillar stands', 'there is a pillar', 'a gray pillar stands'])} "
                      f"{pick(_PILLAR_PLACE[scene.pillar.place])}")  # fmt: skip
    if level == "dense" or scene.pan != "none":
        extras.append(pick(_PAN[scene.pan]))
    leading, sentence = _background_phrases(scene, pick, level=level)
    if pick.flip(0.5):
        body = f"{leading}, {body}"
    else:
        extras.insert(0 if pick.flip() else len(extras), sentence)
    text = ". ".join([body, *extras]) + "."
    return re.sub(r"(^|\. )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def captions(scene: Scene, rng: np.random.Generator) -> dict[str, str]:
    """Captions of ``scene`` at each level of :data:`CAPTION_LEVELS`, with varied wording."""
    pick = _Pick(rng)
    return {level: _caption(scene, pick, level) for level in CAPTION_LEVELS}


def dense_caption(scene: Scene) -> str:
    """The canonical dense caption: every attribute, one fixed wording (deterministic)."""
    return _caption(scene, _Pick(None), "dense")
