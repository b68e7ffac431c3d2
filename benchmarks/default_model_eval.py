"""The default model's bar: a fixed suite of prompts, generated through the one entry and
checked by the world evaluator.

    python benchmarks/default_model_eval.py                       # the default model, default variant
    python benchmarks/default_model_eval.py --variant all          # + 16:9, 9:16, 1 s and 8 s
    python benchmarks/default_model_eval.py --model oracle         # the oracle: checks the suite itself
    python benchmarks/default_model_eval.py --limit 20 --json out.json
    python benchmarks/default_model_eval.py --no-plan              # text only: what the plan adds

Videos are 128×128 (what a user gets by default) unless ``--size`` says otherwise; the
variants are 16:9 and 9:16 (7:4, multiples of 16), 1 s and 8 s around that size.

The suite (``suite()``) is 210 prompts in wordings of this file's own — synonyms and word orders
the world's captioner does not use — over scenes drawn with a fixed seed. 30 of them show a
combination that `cinepatch.data.world.HOLDOUT` keeps out of training. The script checks that
no prompt appears verbatim among a large sample of training captions, and reports the count.

Figures: per-attribute adherence (colour, shape, size, count, background, texture, motion and
the others the evaluator checks), object permanence behind the pillar, temporal consistency of
each object's size (grow/shrink excluded), wall time per video, and how many of ten everyday
prompts outside the world (``EVERYDAY``) still give a video with a warning. Each video is made by
``Studio.create`` — moderation, visible mark, watermark and credentials included — so what is
measured is what a user gets.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cinepatch.app import Studio, VideoRequest
from cinepatch.config import load_config
from cinepatch.data.world import HOLDOUT, held_out
from cinepatch.errors import Refused
from cinepatch.io.video import read_video
from cinepatch.world import Scene, SceneObject, captions, parse_prompt, random_scene
from cinepatch.world.evaluate import evaluate, measure

SUITE_SEED = 2026
CORE = ("colour", "shape", "size", "count", "background", "texture", "motion")

# Wordings the captioner never writes (it draws from cinepatch.world.captions' lists); the
# parser knows them all, and suite() keeps a prompt only if it parses back to its scene.
COLOUR = {"red": ["ruby", "scarlet red"], "orange": ["amber-ish orange", "orange coloured"],
          "yellow": ["gold", "golden yellow"], "green": ["emerald green", "lime green"],
          "blue": ["royal blue", "cobalt blue"], "purple": ["lavender", "violet coloured"],
          "pink": ["salmon", "rose pink"], "white": ["snow white", "ivory white"]}  # fmt: skip
SHAPE = {"circle": [("orb", "orbs"), ("sphere", "spheres"), ("disk", "disks")],
         "square": [("cube", "cubes")],
         "triangle": [("triangle", "triangles"), ("pyramid", "pyramids")]}  # the parser knows no other  # fmt: skip
SIZE = {"small": ["smallish", "tiny"], "medium": ["midsize", "average sized"], "large": ["giant", "large sized"]}
# (singular, plural) verb phrases.
MOTION = {"right": [("glides rightward", "glide rightward"), ("races toward the right", "race toward the right")],
          "left": [("glides leftward", "glide leftward"), ("darts toward the left", "dart toward the left")],
          "up": [("ascends", "ascend"), ("is ascending", "are ascending")],
          "down": [("is descending", "are descending"), ("is sinking", "are sinking")],
          "still": [("holds still", "hold still"), ("is stationary", "are stationary")],
          "bounce": [("keeps bouncing", "keep bouncing"), ("is bouncing", "are bouncing")],
          "grow": [("is expanding", "are expanding"), ("is swelling", "are swelling")],
          "shrink": [("is contracting", "are contracting"), ("is shrinking", "are shrinking")]}  # fmt: skip
SPEED = {"slow": "leisurely", "normal": "", "fast": "swiftly"}
BACKGROUND = {"black": ["pitch black"], "gray": ["slate grey"], "navy": ["deep blue"],
              "forest": ["deep green"], "brown": ["earthy brown"], "sky": ["blue sky"]}  # fmt: skip
TEXTURE = {"none": ["untextured", "uniform"], "striped": ["pinstriped", "stripy"],
           "checkered": ["checkerboard-patterned", "checked"]}  # fmt: skip
PAN = {"left": "while the camera sweeps left", "right": "while the camera sweeps right"}

VARIANTS = ("default", "wide", "tall", "short", "long")


def variant_shape(variant: str, size: int) -> dict:
    """The request shape of a variant around the default ``size``: 16:9 and 9:16 are rounded to
    multiples of 16 (7:4 at 64 and 128), 1 s and 8 s keep the square."""
    long_side = (size * 16 // 9 + 8) // 16 * 16
    return {"default": dict(width=size, height=size, seconds=4.0),
            "wide": dict(width=long_side, height=size, seconds=4.0),
            "tall": dict(width=size, height=long_side, seconds=4.0),
            "short": dict(width=size, height=size, seconds=1.0),
            "long": dict(width=size, height=size, seconds=8.0)}[variant]  # fmt: skip


@dataclass(frozen=True)
class Case:
    prompt: str
    scene: Scene
    tags: tuple[str, ...]


def _object_phrase(obj: SceneObject, count: int, rng: np.random.Generator) -> str:
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    noun = pick(SHAPE[obj.shape])[1 if count > 1 else 0]
    size = pick(SIZE[obj.size])
    article = ("an" if size[0] in "aeiou" else "a") if count == 1 else {2: "two", 3: "three"}[count]
    words = [article, size, pick(COLOUR[obj.colour]), noun]
    motion = pick(MOTION[obj.motion])[1 if count > 1 else 0]
    speed = SPEED[obj.speed] if obj.motion in ("left", "right", "up", "down") else ""
    behind = " behind the pillar" if obj.behind_pillar else ""
    return " ".join(w for w in (*words, motion, speed) if w) + behind


def write_prompt(scene: Scene, rng: np.random.Generator) -> str:
    groups: list[tuple[SceneObject, int]] = []
    for colour, indices in scene.groups().items():
        groups.append((scene.objects[indices[0]], len(indices)))
    parts = [_object_phrase(obj, count, rng) for obj, count in groups]
    texture = TEXTURE[scene.background.texture][int(rng.integers(2))]
    bg = f"{texture} {BACKGROUND[scene.background.colour][0]} backdrop"
    objects = " and ".join(parts)
    extra = []
    if scene.pillar is not None:
        extra.append("a gray column stands in the middle")
    if scene.pan != "none":
        extra.append(PAN[scene.pan])
    order = int(rng.integers(3))
    if order == 0:
        text = f"{objects}, against a {bg}"
    elif order == 1:
        text = f"against a {bg}, {objects}"
    else:
        text = f"{bg}; {objects}"
    return ", ".join([text, *extra])


def _matches(prompt: str, scene: Scene) -> bool:
    try:
        parsed = parse_prompt(prompt)
    except Exception:  # noqa: BLE001 - a wording the parser cannot read is simply not kept
        return False

    def key(s: Scene):
        objs = sorted((o.colour, o.shape, o.size, o.motion, o.speed if o.motion in ("left", "right", "up", "down") else "",
                       o.behind_pillar) for o in s.objects)
        return (s.background.colour, s.background.texture, s.pan, s.pillar is not None, objs)

    return key(parsed) == key(scene)


def _simplify(scene: Scene) -> Scene:
    """The suite names no start positions or entering/leaving objects: placement is free."""
    objects = tuple(replace(o, start=None, exit="none") for o in scene.objects)
    return replace(scene, objects=objects)


def suite(n: int = 210) -> list[Case]:
    rng = np.random.default_rng(SUITE_SEED)
    quotas = [("one", 70, dict(max_objects=1, pillar=False, pan=False)),
              ("two", 50, dict(max_objects=2, pillar=False, pan=False)),
              ("three", 20, dict(max_objects=3, pillar=False, pan=False)),
              ("held-out", 30, dict(max_objects=2, pillar=False, pan=False)),
              ("pillar", 20, dict(max_objects=1, pillar=True, pan=False)),
              ("pan", 20, dict(max_objects=1, pillar=False, pan=True))]  # fmt: skip
    cases: list[Case] = []
    for tag, count, kwargs in quotas:
        made = 0
        while made < count:
            scene = _simplify(random_scene(rng, exits=False, **kwargs))
            n_objects = {"one": 1, "two": 2, "three": 3}.get(tag)
            if n_objects and len(scene.objects) != n_objects:
                continue
            if (tag == "held-out") != held_out(scene):
                continue
            if tag == "pillar" and not any(o.behind_pillar for o in scene.objects):
                continue
            if tag == "pan" and (scene.pan == "none" or scene.background.texture == "none"):
                continue
            prompt = write_prompt(scene, rng)
            if _matches(prompt, scene):
                cases.append(Case(prompt, scene, (tag,)))
                made += 1
    return cases[:n]


def verbatim_overlap(cases: list[Case], samples: int = 20000) -> int:
    """How many suite prompts appear verbatim among ``samples`` scenes' training captions."""
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(samples):
        seen.update(c.lower() for c in captions(random_scene(rng), rng).values())
    return sum(case.prompt.lower() in seen for case in cases)


def consistency(frames: np.ndarray, fps: float, scene: Scene) -> float | None:
    """Share of frames in which each constant-size object is there, whole, with one size.

    Per single-object colour (grow/shrink, pillar and pan scenes excluded), on the evaluator's
    sampled frames between its first and last sighting (leaving the canvas is not a change):
    the object's largest connected component gives its size (the larger side of its box). A
    frame passes when that component exists, no second component of the colour reaches a third
    of its area (no split or duplicate), and the size is within 2 px or 25% of the object's
    median size. Frames where the object touches the border or another object are not judged;
    a frame where it is missing between two sightings is (and fails). Never seen scores 0.
    """
    from cinepatch.world.evaluate import _cut_by_border
    from cinepatch.world.pixels import COLOURS as _COLOURS  # the evaluator's colour order

    if scene.pan != "none" or any(o.behind_pillar for o in scene.objects):
        return None
    groups = scene.groups()
    meas = measure(frames, fps=fps, components_for=tuple(groups))
    scores = []
    for colour, indices in groups.items():
        if len(indices) != 1 or scene.objects[indices[0]].motion in ("grow", "shrink"):
            continue
        c = _COLOURS.index(colour)
        others = [_COLOURS.index(k) for k in groups if k != colour]
        unclear = _cut_by_border(meas, c) | (meas.touching[:, c, others].any(-1) if others else False)
        present = [bool(comps) for comps in meas.components[c]]
        if not any(present):
            scores.append(0.0)  # never seen at all
            continue
        first, last = present.index(True), len(present) - 1 - present[::-1].index(True)
        sizes, whole = [], []
        for k in range(first, last + 1):  # leaving the canvas at the ends is not a change
            comps = sorted(meas.components[c][k], key=lambda comp: -comp["area"])
            if comps and unclear[meas.sampled[k]]:
                continue  # partly hidden or cut by the border: not judged
            if not comps:  # vanished between two sightings
                sizes.append(np.nan)
                whole.append(False)
                continue
            big = comps[0]
            sizes.append(max(big["x1"] - big["x0"], big["y1"] - big["y0"]))
            whole.append(len(comps) == 1 or comps[1]["area"] < big["area"] / 3)
        if len(sizes) < 2 or np.isnan(sizes).all():
            continue  # too little seen clearly to judge
        size = np.asarray(sizes)
        median = float(np.nanmedian(size))
        with np.errstate(invalid="ignore"):
            ok = np.asarray(whole) & (np.abs(size - median) <= max(2.0, 0.25 * median))
        scores.append(float(ok.mean()))
    return float(np.mean(scores)) if scores else None


# Prompts a newcomer types that name nothing in the world: each must give a video and a warning.
EVERYDAY = ("a chef slices a tomato", "a golden retriever runs on a beach at sunset",
            "timelapse of clouds over a mountain lake", "a cup of coffee steaming on a wooden table",
            "a child flies a kite in a park", "rain falling on a city street at night",
            "a drone shot over a forest in autumn", "a cat sleeping on a windowsill",
            "waves crashing against a lighthouse", "a paper boat floating down a stream")  # fmt: skip


def everyday(model: str, workdir: Path) -> dict:
    """How many everyday prompts give a video, how many of those warn, and the errors."""
    studio = Studio(load_config(None, config_dir=workdir / "config", data_dir=workdir / "data"))
    videos, warned, errors = 0, 0, []
    for i, prompt in enumerate(EVERYDAY):
        try:
            result = studio.create(VideoRequest(prompt=prompt, model=model, seed=i), out=workdir / f"everyday-{i}.mp4")
        except Exception as exc:  # noqa: BLE001 — any failure is what this counts
            errors.append(f"{prompt!r} ({exc.__class__.__name__})")
            continue
        videos += 1
        warned += bool(result.warnings)
    return {"prompts": len(EVERYDAY), "videos": videos, "with_warning": warned, "errors": errors}


def run(model: str, variant: str, cases: list[Case], *, size: int, fps: int, steps: int | None, workdir: Path,
        plan: bool = True) -> dict:
    config = load_config(None, config_dir=workdir / "config", data_dir=workdir / "data")
    studio = Studio(config)
    if not plan:  # the same request path with the backend reading no plans: text only
        studio.backend(model)[0].takes_plan = False
    shape = variant_shape(variant, size)
    per_check: dict[str, list[bool]] = defaultdict(list)
    per_tag: dict[str, list[float]] = defaultdict(list)
    consistent: list[float] = []
    times: list[float] = []
    failures = []
    withheld = 0  # outputs the frame review refused, as a user would see them: counted, not scored
    for i, case in enumerate(cases):
        out = workdir / f"{variant}-{i}.mp4"
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                studio.create(VideoRequest(prompt=case.prompt, fps=fps, seed=i, model=model, steps=steps, **shape), out=out)
            except Refused as exc:
                if exc.stage != "output":
                    raise
                withheld += 1
                failures.append({"prompt": case.prompt, "failed": ["withheld by the frame review"]})
                continue
        times.append(time.perf_counter() - start)
        frames = read_video(out).frames
        out.unlink()
        report = evaluate(frames, fps=fps, scene=case.scene)
        for check in report.checks:
            per_check[check.name].append(check.passed)
        per_tag[case.tags[0]].append(report.score)
        score = consistency(frames, fps, case.scene)
        if score is not None:
            consistent.append(score)
        if not report.passed:
            failures.append({"prompt": case.prompt, "failed": [c.name for c in report.checks if not c.passed]})
        print(f"\r{variant}: {i + 1}/{len(cases)} videos, {times[-1]:.1f} s last", end="", file=sys.stderr)
    print(file=sys.stderr)
    core = [ok for name in CORE for ok in per_check.get(name, [])]
    return {
        "variant": variant,
        **shape,
        "fps": fps,
        "videos": len(cases),
        "withheld_by_frame_review": withheld,
        "attributes": {name: round(float(np.mean(v)), 4) for name, v in sorted(per_check.items())},
        "adherence": round(float(np.mean(core)), 4) if core else None,
        "permanence": round(float(np.mean(per_check["pillar_crossing"])), 4) if per_check.get("pillar_crossing") else None,
        "consistency": round(float(np.mean(consistent)), 4) if consistent else None,
        "score_by_group": {tag: round(float(np.mean(v)), 4) for tag, v in per_tag.items()},
        "seconds_per_video": {"median": round(statistics.median(times), 2), "max": round(max(times), 2)},
        "failures": failures[:20],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--variant", default="default", choices=[*VARIANTS, "all"])
    parser.add_argument("--size", type=int, default=128, help="the default variant's side (128: what a user gets)")
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--no-plan", action="store_true", help="generate from the text alone (what the plan adds)")
    parser.add_argument("--limit", type=int, help="first N prompts only (a quick look)")
    parser.add_argument("--only", choices=["one", "two", "three", "held-out", "pillar", "pan"],
                        help="one group of the suite (e.g. pillar: the 20 permanence prompts)")
    parser.add_argument("--sample", type=int, help="N prompts drawn with numpy's default_rng(7) (a quick, spread look)")
    parser.add_argument("--json", type=Path, help="write the full results here")
    args = parser.parse_args(argv)
    cases = suite()
    if args.only:
        cases = [c for c in cases if args.only in c.tags]
    if args.limit:
        cases = cases[: args.limit]
    if args.sample:
        picked = np.random.default_rng(7).choice(len(cases), min(args.sample, len(cases)), replace=False)
        cases = [cases[i] for i in picked]
    overlap = verbatim_overlap(cases)
    print(f"suite: {len(cases)} prompts, {sum('held-out' in c.tags for c in cases)} with held-out combinations "
          f"{dict(HOLDOUT)}; {overlap} appear verbatim among 20,000 scenes' training captions")
    results = []
    variants = list(VARIANTS) if args.variant == "all" else [args.variant]
    with tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            result = run(args.model, variant, cases, size=args.size, fps=args.fps, steps=args.steps, workdir=Path(tmp),
                         plan=not args.no_plan)
            results.append(result)
            printable = {k: v for k, v in result.items() if k != "failures"}
            print(json.dumps(printable, indent=1))
        outside = None if args.only else everyday(args.model, Path(tmp))  # a group alone is a quick look
        if outside is not None:
            print(f"everyday prompts outside the world: {outside['videos']} of {outside['prompts']} made a video, "
                  f"{outside['with_warning']} with a warning; errors: {outside['errors'] or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "overlap": overlap, "results": results,
                                         "everyday": outside}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
