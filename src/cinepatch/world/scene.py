"""The scene model: what one clip of the procedural world contains, as typed frozen data.

A :class:`Scene` is resolution-, aspect- and fps-free: the same scene renders to the same
picture at every canvas (see ``/work/shared/WORLD.md``). Every constant the contract fixes
lives here, so the renderer, the captioner, the parser and the evaluator all read one table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cinepatch.errors import InvalidParameter

__all__ = [
    "BACKGROUNDS",
    "TEXTURES",
    "OBJECT_COLOURS",
    "SHAPES",
    "SIZES",
    "MOTIONS",
    "LINEAR_MOTIONS",
    "SPEEDS",
    "POSITIONS",
    "EXITS",
    "PANS",
    "PILLAR_PLACES",
    "PILLAR_COLOUR",
    "PILLAR_WIDTH",
    "PAN_SPEED",
    "TEXTURE_DARKEN",
    "TEXTURE_PERIOD",
    "MAX_OBJECTS",
    "SKY_TOP",
    "SKY_BOTTOM",
    "Background",
    "SceneObject",
    "Pillar",
    "Scene",
]

# --- Contract constants (WORLD.md) -----------------------------------------------------------

# Plain backgrounds; `sky` is a vertical gradient and has its own two end colours.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "gray": (90, 90, 90),
    "navy": (25, 35, 80),
    "forest": (25, 70, 40),
    "brown": (100, 65, 35),
    "sky": (140, 188, 235),  # the gradient's mid colour, for anything that needs one colour
}
SKY_TOP = (110, 170, 230)
SKY_BOTTOM = (170, 205, 240)
TEXTURES = ("none", "striped", "checkered")
TEXTURE_DARKEN = 25  # texture is the same hue this many levels darker
TEXTURE_PERIOD = 1 / 8  # stripe / check period as a fraction of the canvas width

OBJECT_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 210, 40),
    "green": (40, 190, 70),
    "blue": (40, 80, 230),
    "purple": (150, 60, 200),
    "pink": (245, 120, 185),
    "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle")
# Bounding-box width as a fraction of min(width, height).
SIZES: dict[str, float] = {"small": 0.12, "medium": 0.20, "large": 0.30}

LINEAR_MOTIONS = ("left", "right", "up", "down")
MOTIONS = (*LINEAR_MOTIONS, "still", "bounce", "grow", "shrink")
# Speed of a linear motion, fraction of min(width, height) per second.
SPEEDS: dict[str, float] = {"slow": 0.15, "normal": 0.30, "fast": 0.60}

# Named start positions: (column, row) thirds of the canvas. The renderer places the object's
# centre inside that third (see render.py); `None` lets a seeded rng choose.
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (0, 0),
    "top": (1, 0),
    "top right": (2, 0),
    "left": (0, 1),
    "center": (1, 1),
    "right": (2, 1),
    "bottom left": (0, 2),
    "bottom": (1, 2),
    "bottom right": (2, 2),
}
EXITS = ("none", "enters", "leaves")

PANS = ("none", "left", "right")
PAN_SPEED = 0.20  # content shift, fraction of min(width, height) per second

PILLAR_COLOUR = (170, 170, 170)
PILLAR_WIDTH = 0.12  # fraction of the canvas width
# Pillar centre as a fraction of the width.
PILLAR_PLACES: dict[str, float] = {"left": 0.30, "center": 0.50, "right": 0.70}

MAX_OBJECTS = 3


def _check(name: str, value: object, allowed: tuple[str, ...] | dict[str, Any]) -> None:
    if value not in allowed:
        raise InvalidParameter(name, value, ", ".join(allowed))


@dataclass(frozen=True)
class Background:
    colour: str = "black"
    texture: str = "none"

    def __post_init__(self) -> None:
        _check("background.colour", self.colour, BACKGROUNDS)
        _check("background.texture", self.texture, TEXTURES)


@dataclass(frozen=True)
class SceneObject:
    """One flat-filled shape and its one motion.

    ``speed`` only means something for the linear motions; ``start`` is a key of
    :data:`POSITIONS` or ``None``; ``exit`` says whether the object ``enters`` or ``leaves``
    the canvas (linear motions only); ``behind_pillar`` asks that a left/right mover crosses
    the scene's pillar.
    """

    colour: str
    shape: str
    size: str = "medium"
    motion: str = "still"
    speed: str = "normal"
    start: str | None = None
    exit: str = "none"
    behind_pillar: bool = False

    def __post_init__(self) -> None:
        _check("object.colour", self.colour, OBJECT_COLOURS)
        _check("object.shape", self.shape, SHAPES)
        _check("object.size", self.size, SIZES)
        _check("object.motion", self.motion, MOTIONS)
        _check("object.speed", self.speed, SPEEDS)
        _check("object.exit", self.exit, EXITS)
        if self.start is not None:
            _check("object.start", self.start, POSITIONS)
        if self.motion not in LINEAR_MOTIONS and self.speed != "normal":
            raise InvalidParameter("object.speed", self.speed, "normal", hint=f"{self.motion} has no speed")
        if self.exit != "none" and self.motion not in LINEAR_MOTIONS:
            raise InvalidParameter("object.exit", self.exit, "none", hint=f"only a moving object can {self.exit}")
        if self.exit == "enters" and self.start is not None:
            raise InvalidParameter("object.start", self.start, "None", hint="an entering object starts off-canvas")
        if self.behind_pillar and self.motion not in ("left", "right"):
            raise InvalidParameter(
                "object.behind_pillar", True, "False", hint="only a left/right mover passes behind the pillar"
            )
        if self.behind_pillar and self.exit != "none":
            raise InvalidParameter("object.exit", self.exit, "none", hint="a pillar crossing stays on canvas")
        if self.motion == "bounce" and self.start is not None and POSITIONS[self.start][1] == 2:
            raise InvalidParameter("object.start", self.start, "a top or middle position", hint="a bounce falls from the upper half")
        if self.behind_pillar and self.start is not None:
            raise InvalidParameter("object.start", self.start, "None", hint="a pillar crossing sets its own start")

    @property
    def speed_value(self) -> float:
        """Own speed in min(width, height) per second (0 for non-linear motions)."""
        return SPEEDS[self.speed] if self.motion in LINEAR_MOTIONS else 0.0

    @property
    def velocity(self) -> tuple[float, float]:
        """Own velocity (x right, y down) in min(width, height) per second."""
        v = self.speed_value
        return {"left": (-v, 0.0), "right": (v, 0.0), "up": (0.0, -v), "down": (0.0, v)}.get(self.motion, (0.0, 0.0))


@dataclass(frozen=True)
class Pillar:
    place: str = "center"

    def __post_init__(self) -> None:
        _check("pillar.place", self.place, PILLAR_PLACES)


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    background: Background = field(default_factory=Background)
    pillar: Pillar | None = None
    pan: str = "none"

    def __post_init__(self) -> None:
        objects = tuple(self.objects)
        object.__setattr__(self, "objects", objects)
        if not 1 <= len(objects) <= MAX_OBJECTS:
            raise InvalidParameter("scene.objects", len(objects), f"1 to {MAX_OBJECTS} objects")
        _check("scene.pan", self.pan, PANS)
        shapes: dict[str, str] = {}
        for obj in objects:
            # WORLD.md: a colour names one object unless the objects also share a shape.
            if shapes.setdefault(obj.colour, obj.shape) != obj.shape:
                raise InvalidParameter(
                    "scene.objects",
                    f"{obj.colour} {shapes[obj.colour]} and {obj.colour} {obj.shape}",
                    "one shape per colour",
                    hint="two objects share a colour only when they also share a shape",
                )
            if obj.behind_pillar and self.pillar is None:
                raise InvalidParameter("object.behind_pillar", True, "False", hint="the scene has no pillar")

    @property
    def pan_shift(self) -> float:
        """Horizontal shift of texture and objects, min(width, height) per second."""
        return {"none": 0.0, "left": PAN_SPEED, "right": -PAN_SPEED}[self.pan]

    def groups(self) -> dict[str, list[int]]:
        """Object indices by colour (a colour is one object, or several of one shape)."""
        out: dict[str, list[int]] = {}
        for i, obj in enumerate(self.objects):
            out.setdefault(obj.colour, []).append(i)
        return out

    # --- JSON round trip -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "background": {"colour": self.background.colour, "texture": self.background.texture},
            "objects": [
                {
                    "colour": o.colour,
                    "shape": o.shape,
                    "size": o.size,
                    "motion": o.motion,
                    "speed": o.speed,
                    "start": o.start,
                    "exit": o.exit,
                    "behind_pillar": o.behind_pillar,
                }
                for o in self.objects
            ],
            "pillar": None if self.pillar is None else {"place": self.pillar.place},
            "pan": self.pan,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        if not isinstance(data, dict):
            raise InvalidParameter("scene", type(data).__name__, "a dict from Scene.to_dict()")
        unknown = set(data) - {"background", "objects", "pillar", "pan"}
        if unknown:
            raise InvalidParameter("scene", sorted(unknown), "background, objects, pillar, pan")
        try:
            objects = tuple(SceneObject(**o) for o in data["objects"])
            background = Background(**data.get("background", {}))
            pillar = None if data.get("pillar") is None else Pillar(**data["pillar"])
        except (TypeError, KeyError) as exc:
            raise InvalidParameter("scene", data, "the fields of Scene.to_dict()", hint=str(exc)) from exc
        return cls(objects=objects, background=background, pillar=pillar, pan=data.get("pan", "none"))
