"""Free text → :class:`Scene`: the prompt parser.

Three passes over the prompt, each small enough to read:

1. **Lex**: lowercase words are matched, longest phrase first, against one vocabulary table
   (:data:`LEXICON`) into typed items — a shape noun, a colour, a size, a move verb, a
   left/right word, a texture, "behind the pillar", a separator …
2. **Scene words**: camera pans, the pillar and its place, and the background (a colour next
   to "background"/"backdrop", any background-only colour, any texture) are taken out.
3. **Objects**: every shape noun anchors an object (a count or a plural makes several). The
   words between two anchors are split at the last separator ("and", ",", "while" …): words
   before it describe the earlier object (its motion), words after it the next one (its
   count, size and colour). Without a separator, adjectives go forward and motions back.

Words the parser did not use are reported by :func:`parse_prompt_report`, so a caller can
warn about a partially out-of-world prompt; a prompt that names no object raises
:class:`UnknownPrompt` listing what the world knows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cinepatch.errors import InvalidParameter, UnknownPrompt
from cinepatch.world.scene import (
    BACKGROUNDS,
    MAX_OBJECTS,
    OBJECT_COLOURS,
    SHAPES,
    SIZES,
    Background,
    Pillar,
    Scene,
    SceneObject,
)

__all__ = ["ParseResult", "names_background", "parse_prompt", "parse_prompt_report", "unknown_words", "LEXICON", "world_summary"]


def _plural(words: dict[str, str]) -> dict[str, tuple[str, bool]]:
    """Each noun and its plural: ``word -> (value, is_plural)``."""
    out = {word: (value, False) for word, value in words.items()}
    for word, value in words.items():
        out[word + ("es" if word.endswith(("x", "s")) else "s")] = (value, True)
    return out


_SHAPE_WORDS = _plural(
    {
        "circle": "circle", "ball": "circle", "disc": "circle", "disk": "circle", "dot": "circle",
        "orb": "circle", "sphere": "circle", "round": "circle",
        "square": "square", "box": "square", "block": "square", "cube": "square", "tile": "square",
        "triangle": "triangle", "pyramid": "triangle", "wedge": "triangle",
    }
)  # fmt: skip
_GENERIC_WORDS = _plural({"object": "", "thing": "", "shape": ""})
_OBJECT_COLOUR_WORDS = {
    "red": "red", "crimson": "red", "scarlet": "red", "ruby": "red",
    "orange": "orange", "tangerine": "orange", "amber": "orange",
    "yellow": "yellow", "golden": "yellow", "gold": "yellow", "lemon": "yellow",
    "green": "green", "lime": "green", "emerald": "green",
    "blue": "blue", "cobalt": "blue", "azure": "blue", "royal blue": "blue",
    "purple": "purple", "violet": "purple", "lilac": "purple", "lavender": "purple",
    "pink": "pink", "rose": "pink", "magenta": "pink", "salmon": "pink",
    "white": "white", "ivory": "white", "snowy": "white", "snow white": "white",
}  # fmt: skip
_BG_COLOUR_WORDS = {
    "black": "black", "jet black": "black", "charcoal": "black", "pitch black": "black",
    "gray": "gray", "grey": "gray", "slate": "gray", "slate gray": "gray", "slate grey": "gray",
    "navy": "navy", "navy blue": "navy", "dark blue": "navy", "midnight blue": "navy", "deep blue": "navy",
    "forest": "forest", "forest green": "forest", "dark green": "forest", "deep green": "forest",
    "brown": "brown", "dark brown": "brown", "earthy brown": "brown", "chocolate": "brown",
    "sky": "sky", "sky blue": "sky", "light blue": "sky", "pale blue": "sky", "blue sky": "sky",
}  # fmt: skip
# An object colour next to "background" means the nearest background, where one is close.
_BG_FROM_OBJECT = {"blue": "sky", "green": "forest", "white": "gray"}
_SIZE_WORDS = {
    "small": "small", "tiny": "small", "little": "small", "smallish": "small",
    "medium": "medium", "medium sized": "medium", "mid sized": "medium", "midsize": "medium",
    "average sized": "medium", "moderate": "medium",
    "large": "large", "big": "large", "huge": "large", "giant": "large", "large sized": "large",
}  # fmt: skip
_COUNT_WORDS = {
    "a": 1, "an": 1, "one": 1, "single": 1, "another": 1, "1": 1,
    "two": 2, "pair of": 2, "a pair of": 2, "couple of": 2, "a couple of": 2, "2": 2,
    "three": 3, "trio of": 3, "a trio of": 3, "3": 3,
}  # fmt: skip
_MOVE_WORDS = (
    "move moves moving moved drift drifts drifting slide slides sliding travel travels travelling "
    "traveling head heads heading go goes going glide glides gliding roll rolls rolling fly flies "
    "flying float floats floating pass passes passing cross crosses crossing zoom zooms zooming race "
    "races racing dart darts darting run runs running"
).split()
_MOTION_WORDS = {
    # direction-only words
    "rightward": "right", "rightwards": "right", "to the right": "right", "toward the right": "right",
    "towards the right": "right", "from left to right": "right", "left to right": "right",
    "from the left to the right": "right",
    "leftward": "left", "leftwards": "left", "to the left": "left", "toward the left": "left",
    "towards the left": "left", "from right to left": "left", "right to left": "left",
    "from the right to the left": "left",
    "up": "up", "upward": "up", "upwards": "up", "rises": "up", "rising": "up", "rise": "up",
    "ascends": "up", "ascending": "up", "climbs": "up", "climbing": "up",
    "down": "down", "downward": "down", "downwards": "down", "sinks": "down", "sinking": "down",
    "sink": "down", "descends": "down", "descending": "down",
    # the other motions
    "still": "still", "stays still": "still", "stationary": "still", "motionless": "still",
    "static": "still", "unmoving": "still", "stays put": "still", "does not move": "still",
    "doesn't move": "still", "not moving": "still", "at rest": "still", "rests": "still", "sits": "still",
    "sitting": "still", "stays in place": "still", "holds still": "still", "sit still": "still",
    "sits still": "still", "stay put": "still", "do not move": "still", "don't move": "still",
    "are motionless": "still", "is motionless": "still", "climb": "up", "descend": "down",
    "fall and bounce": "bounce", "bounce on the floor": "bounce", "expand": "grow", "get bigger": "grow",
    "swell": "grow", "contract": "shrink", "get smaller": "shrink", "dwindle": "shrink",
    "bounce": "bounce", "bounces": "bounce", "bouncing": "bounce", "bouncy": "bounce",
    "bounces on the floor": "bounce", "falls and bounces": "bounce",
    "grow": "grow", "grows": "grow", "growing": "grow", "expands": "grow", "expanding": "grow",
    "gets bigger": "grow", "getting bigger": "grow", "swells": "grow", "swelling": "grow",
    "enlarges": "grow", "inflates": "grow",
    "shrink": "shrink", "shrinks": "shrink", "shrinking": "shrink", "contracts": "shrink",
    "contracting": "shrink", "gets smaller": "shrink", "getting smaller": "shrink",
    "dwindles": "shrink", "deflates": "shrink",
}  # fmt: skip
_SPEED_WORDS = {
    "slowly": "slow", "slow": "slow", "gently": "slow", "leisurely": "slow", "lazily": "slow",
    "quickly": "fast", "fast": "fast", "rapidly": "fast", "swiftly": "fast", "speedily": "fast",
    "quick": "fast", "rapid": "fast", "swift": "fast",
    "steadily": "normal", "at normal speed": "normal", "at a steady pace": "normal",
    "at a moderate speed": "normal",
}  # fmt: skip
_POSITION_WORDS = {
    "top left": "top left", "upper left": "top left", "top right": "top right", "upper right": "top right",
    "bottom left": "bottom left", "lower left": "bottom left", "bottom right": "bottom right",
    "lower right": "bottom right", "top": "top", "bottom": "bottom", "center": "center", "centre": "center",
    "middle": "center", "top left corner": "top left", "top right corner": "top right",
    "bottom left corner": "bottom left", "bottom right corner": "bottom right",
    "top edge": "top", "bottom edge": "bottom", "left edge": "left", "right edge": "right",
    "left side": "left", "right side": "right",
}  # fmt: skip
_EXIT_WORDS = {
    "enters": "enters", "entering": "enters", "enter": "enters", "comes in": "enters",
    "comes into view": "enters", "into view": "enters", "into frame": "enters", "into the frame": "enters",
    "enters the frame": "enters", "enters the scene": "enters", "arrives": "enters", "leave": "leaves",
    "leaves": "leaves", "leaving": "leaves", "exits": "leaves", "exiting": "leaves",
    "leaves the frame": "leaves", "leaves the scene": "leaves", "out of view": "leaves",
    "out of frame": "leaves", "out of the frame": "leaves", "off screen": "leaves", "offscreen": "leaves",
    "disappears off": "leaves", "come into view": "enters", "go out of view": "leaves",
    "goes out of view": "leaves",
}  # fmt: skip
_TEXTURE_WORDS = {
    "striped": "striped", "stripes": "striped", "stripy": "striped", "vertical stripes": "striped",
    "pinstriped": "striped", "stripe": "striped", "vertically striped": "striped",
    "checkered": "checkered", "chequered": "checkered", "checked": "checkered", "checkerboard": "checkered",
    "checkers": "checkered", "checks": "checkered", "check pattern": "checkered", "checker": "checkered",
    "plain": "none", "solid": "none", "flat": "none", "untextured": "none", "no texture": "none",
    "plain colored": "none", "plain coloured": "none", "uniform": "none",
}  # fmt: skip
_OTHER_WORDS = {
    "background": ("bgnoun", ""), "backdrop": ("bgnoun", ""), "backgrounds": ("bgnoun", ""),
    "bg": ("bgnoun", ""), "setting": ("bgnoun", ""),
    "camera": ("camera", ""), "view": ("camera", ""), "shot": ("camera", ""),
    "pans": ("pan", ""), "pan": ("pan", ""), "panning": ("pan", ""), "pans to the": ("pan", ""),
    "pans towards the": ("pan", ""), "tracks": ("pan", ""), "tracking": ("pan", ""), "sweeps": ("pan", ""),
    "pillar": ("pillar", ""), "column": ("pillar", ""), "post": ("pillar", ""), "pole": ("pillar", ""),
    "gray pillar": ("pillar", ""), "grey pillar": ("pillar", ""), "stone pillar": ("pillar", ""),
    "pillars": ("pillar", ""),
    "behind": ("behind", ""), "passes behind": ("behind", ""), "passing behind": ("behind", ""),
    "goes behind": ("behind", ""), "going behind": ("behind", ""), "moves behind": ("behind", ""),
    "disappears behind": ("behind", ""), "ducks behind": ("behind", ""),
    "left": ("lr", "left"), "right": ("lr", "right"),
    "starting": ("start", ""), "starts": ("start", ""), "start": ("start", ""), "beginning": ("start", ""),
    "begins": ("start", ""), "from": ("start", ""), "from the": ("start", ""), "at": ("at", ""),
    "in": ("at", ""), "on": ("at", ""), "near": ("at", ""),
    "and": ("sep", ""), ",": ("sep", ""), ";": ("sep", ""), ".": ("sep", ""), "while": ("sep", ""),
    "whilst": ("sep", ""), "as": ("sep", ""), "then": ("sep", ""), "plus": ("sep", ""), "also": ("sep", ""),
    "both": ("all", ""), "all": ("all", ""), "together": ("all", ""), "each": ("all", ""),
}  # fmt: skip
# Words that carry no meaning of their own here (never reported as "not understood").
_STOPWORDS = frozenset(
    "the is are of to with its it that which there this these those who whose into over under by against "
    "across onto upon through toward towards side corner edge frame scene video clip shows showing shown "
    "where we see very slightly one other than stays stay remains remain sized size speed pace colored "
    "coloured colour color same way along around then also just again steady steadily some being be "
    "moving move moves : - screen canvas image picture staying stands stand pattern standing come comes "
    "has have there's".split()
)


def _lexicon() -> dict[str, tuple[str, object]]:
    table: dict[str, tuple[str, object]] = {}
    for word, value in {**_SHAPE_WORDS, **_GENERIC_WORDS}.items():
        table[word] = ("shape", value)
    for cat, words in (
        ("colour", _OBJECT_COLOUR_WORDS),
        ("bgcolour", _BG_COLOUR_WORDS),
        ("size", _SIZE_WORDS),
        ("count", _COUNT_WORDS),
        ("motion", _MOTION_WORDS),
        ("speed", _SPEED_WORDS),
        ("pos", _POSITION_WORDS),
        ("exit", _EXIT_WORDS),
        ("texture", _TEXTURE_WORDS),
    ):
        for word, value in words.items():
            table[word] = (cat, value)
    for word in _MOVE_WORDS:
        table[word] = ("move", "")
    table.update(_OTHER_WORDS)
    return table


LEXICON: dict[str, tuple[str, object]] = _lexicon()
_MAX_PHRASE = max(len(p.split()) for p in LEXICON)


@dataclass
class _Item:
    cat: str
    value: object
    start: int  # token span
    stop: int
    used: bool = False


@dataclass(frozen=True)
class ParseResult:
    """A parsed prompt: the scene, and the words that were not understood."""

    scene: Scene
    unknown_words: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fully_understood(self) -> bool:
        return not self.unknown_words


def world_summary() -> str:
    """What the world knows, for error messages."""
    return (
        f"colours: {', '.join(OBJECT_COLOURS)}; shapes: {', '.join(SHAPES)}; sizes: {', '.join(SIZES)}; "
        "motions: moves left/right/up/down (slowly/quickly), stays still, bounces, grows, shrinks, "
        "enters/leaves, passes behind the pillar; "
        f"backgrounds: {', '.join(BACKGROUNDS)} (plain, striped or checkered); "
        "a pillar (left/center/right); the camera pans left/right"
    )


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("-", " ").replace("’", "'")
    return re.findall(r"[a-z']+|\d+|[,.;:]", text)


def _lex(tokens: list[str]) -> list[_Item]:
    items: list[_Item] = []
    i = 0
    while i < len(tokens):
        for n in range(min(_MAX_PHRASE, len(tokens) - i), 0, -1):
            phrase = " ".join(tokens[i : i + n])
            if phrase in LEXICON:
                cat, value = LEXICON[phrase]
                items.append(_Item(cat, value, i, i + n))
                i += n
                break
        else:
            i += 1
    return items


def _next(items: list[_Item], k: int, cats: tuple[str, ...], *, within: int, skip: tuple[str, ...] = ()) -> int | None:
    """Index of the first item after ``k`` of a category in ``cats`` within ``within`` items."""
    for j in range(k + 1, min(len(items), k + 1 + within)):
        if items[j].used:
            continue
        if items[j].cat in cats:
            return j
        if items[j].cat not in skip:
            return None
    return None


def _scene_words(items: list[_Item]) -> tuple[str, str | None, str, str | None]:
    """Take the pan, pillar, background colour and texture out of ``items``."""
    pan = "none"
    pillar: str | None = None
    bg_colour: str | None = None
    texture = "none"
    for k, item in enumerate(items):
        if item.used:
            continue
        if item.cat in ("camera", "pan"):
            j = _next(items, k, ("lr", "motion", "pan"), within=4, skip=("pan", "move", "at", "start", "speed"))
            if j is not None and items[j].cat == "pan":
                j = _next(items, j, ("lr", "motion"), within=3, skip=("at", "speed"))
            if j is not None and items[j].cat == "lr":
                pan = str(items[j].value)
                for x in items[k : j + 1]:
                    x.used = True
            elif j is not None and items[j].value == "still":
                item.used = items[j].used = True  # "a static camera"
            elif item.cat == "pan" or item.cat == "camera":
                # "static camera" puts the motion word first.
                if k > 0 and items[k - 1].cat == "motion" and items[k - 1].value == "still":
                    item.used = items[k - 1].used = True
    for k, item in enumerate(items):
        if item.used or item.cat != "pillar":
            continue
        item.used = True
        pillar = pillar or "center"
        j = _next(items, k, ("lr", "pos"), within=3, skip=("at", "start", "sep"))
        if j is not None and items[j].value in ("left", "right", "center"):
            pillar = str(items[j].value)
            for x in items[k : j + 1]:
                if x.cat in ("lr", "pos", "at"):
                    x.used = True
        elif k > 0 and items[k - 1].cat in ("lr", "pos") and items[k - 1].value in ("left", "right", "center"):
            pillar = str(items[k - 1].value)  # "a left pillar"
            items[k - 1].used = True
    for k, item in enumerate(items):
        if item.used or item.cat != "bgnoun":
            continue
        item.used = True
        # "on a plain dark blue backdrop", "the background is navy and striped"
        window = list(range(max(0, k - 4), k))[::-1] + list(range(k + 1, min(len(items), k + 5)))
        for j in window:
            other = items[j]
            if other.used:
                continue
            if other.cat == "bgcolour" and bg_colour is None:
                bg_colour, other.used = str(other.value), True
            elif other.cat == "colour" and bg_colour is None and other.value in _BG_FROM_OBJECT:
                # Only when it is not an object's colour ("a blue ball on a gray background").
                nxt = items[j + 1] if j + 1 < len(items) else None
                if nxt is None or nxt.cat not in ("shape", "size", "colour"):
                    bg_colour, other.used = _BG_FROM_OBJECT[str(other.value)], True
            elif other.cat == "texture":
                texture, other.used = str(other.value), True
            elif other.cat in ("shape", "move", "motion", "pillar"):
                if j > k:
                    break
    for item in items:
        if item.used:
            continue
        if item.cat == "bgcolour" and bg_colour is None:
            bg_colour, item.used = str(item.value), True
        elif item.cat == "texture":
            texture, item.used = str(item.value), True
    return pan, pillar, bg_colour, texture


@dataclass
class _Draft:
    shape: str
    count: int
    plural: bool
    words: list[_Item] = field(default_factory=list)  # pre + post modifiers, in order
    pre: list[_Item] = field(default_factory=list)


def _resolve_directions(items: list[_Item]) -> None:
    """Decide what each left/right word means: a motion, a start, or nothing."""
    for k, item in enumerate(items):
        if item.used or item.cat not in ("lr", "pos"):
            continue
        prev = next((items[j] for j in range(k - 1, -1, -1) if not items[j].used), None)
        if prev is not None and prev.cat in ("start", "at"):
            item.cat = "startpos"
        elif prev is not None and prev.cat in ("move", "speed", "motion", "behind") and item.cat == "lr":
            item.cat, item.value = "motion", item.value
        elif item.cat == "lr":
            item.cat = "motion"


def _objects(items: list[_Item]) -> list[_Draft]:
    free = [it for it in items if not it.used]
    anchors = [k for k, it in enumerate(free) if it.cat == "shape"]
    if not anchors:
        colours = [k for k, it in enumerate(free) if it.cat == "colour"]
        if not colours:
            return []
        # "something red moving right": a colour with no shape word is a circle.
        free.insert(colours[0] + 1, _Item("shape", ("circle", False), free[colours[0]].stop, free[colours[0]].stop))
        anchors = [colours[0] + 1]
    drafts = [_Draft(shape=str(free[a].value[0]) or "circle", count=0, plural=bool(free[a].value[1])) for a in anchors]
    for n, a in enumerate(anchors):
        free[a].used = True
        lo = anchors[n - 1] + 1 if n > 0 else 0
        segment = free[lo:a]
        if n == 0:
            drafts[0].pre.extend(segment)
            continue
        seps = [i for i, it in enumerate(segment) if it.cat == "sep"]
        if seps:
            cut = seps[-1]
            drafts[n - 1].words.extend(segment[:cut])
            drafts[n].pre.extend(segment[cut + 1 :])
        else:
            for it in segment:
                (drafts[n].pre if it.cat in ("colour", "size", "count") else drafts[n - 1].words).append(it)
    drafts[-1].words.extend(free[anchors[-1] + 1 :])
    return drafts


def _build(draft: _Draft) -> tuple[list[SceneObject], bool]:
    """One draft to its objects; also whether its motion applies to all ("both move left")."""
    values: dict[str, object] = {}
    shared = False
    # Post-modifiers win over pre-modifiers; of the pre-modifiers the nearest the noun wins
    # ("on a plain background, three squares" counts three).
    for it in [*draft.words, *reversed(draft.pre)]:
        if it.cat in ("colour", "size", "motion", "speed", "exit", "startpos") and it.cat not in values:
            values[it.cat] = it.value
            it.used = True
        elif it.cat == "count" and "count" not in values and it in draft.pre:
            values["count"] = it.value
            it.used = True
        elif it.cat == "behind":
            values["behind"] = True
            it.used = True
        elif it.cat == "all" and it in draft.words:
            shared = True
            it.used = True
        elif it.cat in ("move", "start", "at", "sep", "speed", "colour", "size", "motion", "count"):
            it.used = it.used or it.cat in ("move", "start", "at", "sep")
    count = int(values.get("count", 2 if draft.plural else 1))  # type: ignore[arg-type]
    if draft.plural and count == 1:
        count = 2
    motion = str(values.get("motion", "still"))
    speed = str(values.get("speed", "normal")) if motion in ("left", "right", "up", "down") else "normal"
    exit_ = str(values.get("exit", "none")) if motion in ("left", "right", "up", "down") else "none"
    start = values.get("startpos")
    if exit_ == "enters" or values.get("behind"):
        start = None
    if motion == "bounce" and start in ("bottom", "bottom left", "bottom right"):
        start = None
    obj = SceneObject(
        colour=str(values.get("colour", "white")),
        shape=draft.shape,
        size=str(values.get("size", "medium")),
        motion=motion,
        speed=speed,
        start=None if start is None else str(start),
        exit=exit_ if not values.get("behind") else "none",
        behind_pillar=bool(values.get("behind")) and motion in ("left", "right"),
    )
    return [obj] * count, shared and "motion" in values


def parse_prompt_report(text: str) -> ParseResult:
    """Parse ``text`` into a :class:`Scene` and list the words that were not understood."""
    if not isinstance(text, str) or not text.strip():
        raise UnknownPrompt(f"the prompt is empty; the world knows {world_summary()}")
    tokens = _tokens(text)
    items = _lex(tokens)
    pan, pillar, bg_colour, texture = _scene_words(items)
    _resolve_directions(items)
    drafts = _objects(items)
    if not drafts:
        raise UnknownPrompt(f"{text!r} names no object of the world; the world knows {world_summary()}")
    objects: list[SceneObject] = []
    shared_motion: SceneObject | None = None
    for draft in drafts:
        built, shared = _build(draft)
        if shared:
            shared_motion = built[0]
        objects.extend(built)
    if shared_motion is not None:
        # "a red ball and a blue box both move left": the motion goes to every still object.
        objects = [
            SceneObject(**{**o.__dict__, "motion": shared_motion.motion, "speed": shared_motion.speed})
            if o.motion == "still"
            else o
            for o in objects
        ]
    if pillar is None and any(o.behind_pillar for o in objects):
        pillar = "center"  # "passes behind something" names the pillar implicitly
    if len(objects) > MAX_OBJECTS:
        raise InvalidParameter("objects", len(objects), f"1 to {MAX_OBJECTS} objects in one scene")
    scene = Scene(
        objects=tuple(objects),
        background=Background(colour=bg_colour or "black", texture=texture),
        pillar=None if pillar is None else Pillar(place=pillar),
        pan=pan,
    )
    covered = set()
    for it in items:
        if it.used or it.cat in ("sep", "at", "start", "move", "count", "all"):
            covered.update(range(it.start, it.stop))
    unknown = tuple(
        tok for i, tok in enumerate(tokens) if i not in covered and tok not in _STOPWORDS and tok.isalpha()
    )
    return ParseResult(scene=scene, unknown_words=unknown)


def names_background(text: str) -> bool:
    """Whether ``text`` names a background colour or texture (a scene it does not name one for
    is drawn on black, :func:`parse_prompt`; a storyboard card keeps the card before's)."""
    _, _, colour, texture = _scene_words(_lex(_tokens(text)))
    return colour is not None or texture != "none"


def parse_prompt(text: str) -> Scene:
    """Free text to a :class:`Scene`; raises :class:`UnknownPrompt` if it names no object."""
    return parse_prompt_report(text).scene


def unknown_words(text: str) -> tuple[str, ...]:
    """The words of ``text`` the world did not understand (all of them if it names no object)."""
    try:
        return parse_prompt_report(text).unknown_words
    except UnknownPrompt:
        return tuple(t for t in _tokens(text) if t.isalpha() and t not in _STOPWORDS and t not in LEXICON)
