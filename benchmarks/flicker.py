"""Temporal stability of a model: how much still scenes change from frame to frame.

    python benchmarks/flicker.py                                   # the shipped default model
    python benchmarks/flicker.py runs/clips/pipeline --n 12        # a training run's model

In a still scene nothing should change between frames (the world oracle: 0 levels), so every
level a model changes there is flicker, and flicker is what an edit's seams are made of: the
first new frame after pinned ones differs from them by about the model's own frame-to-frame
change. ``--n`` still scenes of one object (sizes, shapes, colours and backgrounds drawn with
``numpy.random.default_rng(3)``), each planned by the world planner and generated at 128×128,
3 s at 8 fps, seed 0, through the pipeline (no provenance). Prints the mean absolute change per
frame (0–255 levels) inside the object's box and on the background, and the mean of each; and
inside the box between frames two apart: a DiT whose tokens span two frames and draws the two
differently changes less over two frames than over one. Then the same frames after the
temporal denoiser the app runs over an embedded model's videos (``cinepatch.io.denoise``),
and what that denoiser costs where there is nothing to remove: PSNR of 24 of the world's own
renders (random scenes, ``numpy.random.default_rng(5)``, 32 frames) against themselves denoised.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cinepatch.io.denoise import temporal_denoise
from cinepatch.pipeline import Pipeline
from cinepatch.planning import rasterize
from cinepatch.planning.world import plan_from_scene
from cinepatch.world.scene import BACKGROUNDS, OBJECT_COLOURS, SHAPES, SIZES, TEXTURES, Background, Scene, SceneObject
from cinepatch.world.captions import dense_caption, random_scene
from cinepatch.world.render import render

DEFAULT = Path(__file__).resolve().parents[1] / "src/cinepatch/weights/default"
SIZE, FPS, FRAMES = 128, 8, 24


def scenes(n: int) -> list[Scene]:
    rng = np.random.default_rng(3)
    out = []
    while len(out) < n:
        colour, background = str(rng.choice(list(OBJECT_COLOURS))), str(rng.choice(list(BACKGROUNDS)))
        if colour == background:
            continue
        obj = SceneObject(shape=str(rng.choice(SHAPES)), colour=colour, size=str(rng.choice(list(SIZES))), motion="still")
        out.append(Scene(objects=(obj,), background=Background(background, str(rng.choice(TEXTURES)))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", type=Path, default=DEFAULT, help="a model folder (default: the shipped one)")
    parser.add_argument("--n", type=int, default=8, help="still scenes (default 8)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: the model's own)")
    args = parser.parse_args()
    pipe = Pipeline.from_pretrained(args.model)
    inside, outside, apart, served_in, served_out = [], [], [], [], []
    start = time.perf_counter()
    for scene in scenes(args.n):
        prompt = dense_caption(scene)
        plan = plan_from_scene(scene, width=SIZE, height=SIZE, fps=FPS, frames=FRAMES, seed=0)
        video = pipe.generate(prompt, frames=FRAMES, width=SIZE, height=SIZE, fps=FPS, seed=0, plans=[plan],
                              steps=args.steps, progress=False)[0]
        change, two, served = change_map(video), change_map(video, step=2), change_map(temporal_denoise(video))
        box = rasterize(plan, grid=(SIZE, SIZE)).occupancy[0].max(axis=0) > 0
        inside.append(float(change[box].mean()))
        outside.append(float(change[~box].mean()))
        apart.append(float(two[box].mean()))
        served_in.append(float(served[box].mean()))
        served_out.append(float(served[~box].mean()))
        print(f"  {inside[-1]:6.2f} in the box ({apart[-1]:5.2f} two frames apart)  {outside[-1]:5.2f} background  {prompt}")
    print(f"{args.model}: {len(inside)} still scenes, {time.perf_counter() - start:.0f} s")
    print(f"flicker (levels per frame): in the object's box {np.mean(inside):.2f}, background {np.mean(outside):.2f}; "
          f"in the box two frames apart {np.mean(apart):.2f}")
    print(f"after the temporal denoiser (as the app serves it, before H.264): "
          f"in the object's box {np.mean(served_in):.2f}, background {np.mean(served_out):.2f}")
    kept = clean_psnr(24)
    print(f"the denoiser on 24 clean world renders: median {np.median(kept):.1f} dB, worst {np.min(kept):.1f} dB")


def change_map(video: np.ndarray, step: int = 1) -> np.ndarray:
    """``(H, W)``: mean absolute change between frames ``step`` apart, 0–255 levels."""
    video = video.astype(np.float32)
    return np.abs(video[step:] - video[:-step]).mean(axis=(0, 3))


def clean_psnr(n: int) -> list[float]:
    """PSNR of the world's own renders (no flicker) after the temporal denoiser."""
    rng = np.random.default_rng(5)
    out = []
    for _ in range(n):
        video = render(random_scene(rng), width=SIZE, height=SIZE, fps=FPS, frames=32)
        error = np.mean((temporal_denoise(video).astype(np.float64) - video) ** 2)
        out.append(float(10 * np.log10(255.0**2 / max(error, 1e-12))))
    return out


if __name__ == "__main__":
    main()
