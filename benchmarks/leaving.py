"""Objects that leave: does a model stop drawing an object once its plan has taken it off the canvas?

    python benchmarks/leaving.py                 # the shipped default model, 24 videos
    python benchmarks/leaving.py --n 48
    python benchmarks/leaving.py --hard --seconds 3 --seeds 18   # 72 videos of the failures found

``--n`` captions of one object moving quickly left, right, up or down — every other one saying
that it leaves, the rest not, each from a start the world draws — (shapes, sizes, colours and
backgrounds drawn with ``numpy.random.default_rng(5)``), made through ``Studio.create`` as a
user gets them (the app plans each one), 4 s at 128×128 and 8 fps, seed = the caption's index.
On every frame where the stored plan has the object wholly off the canvas its colour should be
gone; a frame still showing at least a quarter of a small triangle's area of it (the scene
reader's threshold for an object) counts as drawn. Prints each video's count of such frames and
the totals for each kind of caption. The oracle (``--model oracle``) draws none.

``--hard``: instead, four captions of small (and one medium) quick movers that do not say they
leave, where the failure was found (a loop of ``edit_quality.py --n 6 --long``, a video of this
benchmark); ``--seeds K`` makes each caption with seeds 0..K−1, ``--seconds`` sets the length.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from cinepatch.app import Studio, VideoRequest
from cinepatch.config import load_config
from cinepatch.io.video import read_video
from cinepatch.world.captions import dense_caption
from cinepatch.world.parse import parse_prompt
from cinepatch.world.pixels import COLOURS, FILL, measure
from cinepatch.world.scene import (
    BACKGROUNDS,
    LINEAR_MOTIONS,
    OBJECT_COLOURS,
    POSITIONS,
    SHAPES,
    SIZES,
    TEXTURES,
    Background,
    Scene,
    SceneObject,
)

SIZE, FPS = 128, 8
HARD = (
    "A small blue square starting at the bottom left moves right quickly. The camera is static. The background is checkered brown.",
    "A small pink circle starting at the bottom moves left quickly. The camera is static. The background is striped gray.",
    "A small yellow triangle starting at the top left moves right quickly. The camera is static. The background is plain navy.",
    "A medium red square starting at the right moves left quickly. The camera is static. The background is checkered forest green.",
)  # fmt: skip


def scenes(n: int) -> list[Scene]:
    rng = np.random.default_rng(5)
    out: list[Scene] = []
    while len(out) < n:
        colour, background = str(rng.choice(list(OBJECT_COLOURS))), str(rng.choice(list(BACKGROUNDS)))
        if colour == background:
            continue
        exit = ("leaves", "none")[len(out) % 2]
        obj = SceneObject(shape=str(rng.choice(SHAPES)), colour=colour, size=str(rng.choice(list(SIZES))),
                          motion=str(rng.choice(LINEAR_MOTIONS)), speed="fast", exit=exit,
                          start=None if exit == "leaves" else str(rng.choice(list(POSITIONS))))  # fmt: skip
        out.append(Scene(objects=(obj,), background=Background(background, str(rng.choice(TEXTURES)))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="a model name (default: the embedded default)")
    parser.add_argument("--n", type=int, default=24, help="captions (default 24)")
    parser.add_argument("--hard", action="store_true", help="the four captions where the failure was found instead")
    parser.add_argument("--seeds", type=int, help="make each caption with seeds 0..SEEDS-1 (default: one, its index)")
    parser.add_argument("--seconds", type=float, default=4.0, help="video length (default 4)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp())
    studio = Studio(replace(load_config(None, config_dir=workdir / "config", data_dir=workdir / "data"), visible_mark=False))
    totals = {"leaves": [0, 0, 0, 0], "none": [0, 0, 0, 0]}  # frames drawn, frames gone, videos drawn, videos
    start = time.perf_counter()
    cases = [(text, parse_prompt(text).objects[0]) for text in HARD] if args.hard else \
        [(dense_caption(scene), scene.objects[0]) for scene in scenes(args.n)]  # fmt: skip
    for index, (prompt, obj) in enumerate(cases):
        for seed in range(args.seeds) if args.seeds else (index,):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = studio.create(VideoRequest(prompt=prompt, model=args.model, seconds=args.seconds, seed=seed,
                                                    width=SIZE, height=SIZE, fps=FPS), out=workdir / "out.mp4")  # fmt: skip
            if result.plan is None:
                print(f"  no plan  {prompt}")
                continue
            box = result.plan.objects[0].track
            off = ~((box[:, 2] > 0) & (box[:, 0] < 1) & (box[:, 3] > 0) & (box[:, 1] < 1))
            meas = measure(read_video(workdir / "out.mp4").frames, fps=FPS)
            least = 0.25 * FILL["triangle"] * SIZES["small"] ** 2 * meas.unit**2
            count = int((off & (meas.area[:, COLOURS.index(obj.colour)] >= least)).sum())
            total = totals[obj.exit]
            total[0], total[1], total[2], total[3] = total[0] + count, total[1] + int(off.sum()), total[2] + (count > 0), total[3] + 1
            print(f"  {count:2d} of {int(off.sum()):2d} frames after it left still show it  (seed {seed})  {prompt}")
    print(f"{args.model}: {sum(t[3] for t in totals.values())} videos, {time.perf_counter() - start:.0f} s")
    for exit, (drawn, gone, videos, count) in totals.items():
        words = "saying it leaves" if exit == "leaves" else "not saying so"
        print(f"captions {words}: the object drawn after its plan took it off the canvas in {videos} of {count} videos, "
              f"on {drawn} of {gone} such frames ({drawn / max(gone, 1):.1%})")


if __name__ == "__main__":
    main()
