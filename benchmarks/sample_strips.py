"""Sample strips of the default model for the docs: what a user gets, beside the world's truth.

    python benchmarks/sample_strips.py                       # writes docs/img/strip-*.jpg
    python benchmarks/sample_strips.py --model runs/x/pipeline --out /tmp/strips

For each prompt, one 4 s video through ``Studio.create`` (seed 0: planning, the frame review,
the visible mark and the watermark included, read back from the MP4) and the world oracle's
render of the same prompt; eight frames 0.5 s apart, the model above the truth, at 1× scale.
The world evaluator's verdict on the model's video is printed beside each strip's path.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from cinepatch.app import Studio, VideoRequest
from cinepatch.config import load_config
from cinepatch.io.video import read_video
from cinepatch.world.evaluate import evaluate

PROMPTS = {
    "squares": "two small yellow squares move right on a plain navy background",
    "pillar": "a medium red circle moves right behind the pillar on a striped sky background",
    "bounce": "a large green triangle bounces on a checkered brown background",
    "three": "a small white circle grows, a medium pink square moves up and a small blue triangle stays still on a black background",
}
DOCS = Path(__file__).resolve().parents[1] / "docs/img"


def strip(frames: np.ndarray, fps: int, every: float = 0.5, count: int = 8) -> np.ndarray:
    picks = [min(round(i * every * fps), len(frames) - 1) for i in range(count)]
    gap = np.full((frames.shape[1], 2, 3), 255, np.uint8)
    return np.concatenate([x for i in picks for x in (frames[i], gap)][:-1], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    config = load_config(None, config_dir=work / "config", data_dir=work / "data")
    studio = Studio(config)
    truth_studio = Studio(replace(config, visible_mark=False))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, prompt in PROMPTS.items():
        rows = []
        for which, model in (("model", args.model), ("truth", "oracle")):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                owner = studio if which == "model" else truth_studio
                result = owner.create(VideoRequest(prompt=prompt, model=model, seed=0), out=work / f"{name}-{which}.mp4")
            video = read_video(result.path)
            rows.append(strip(video.frames, result.fps))
            if which == "model":
                report = evaluate(video.frames, fps=result.fps, prompt=prompt)
                verdict = f"evaluator {report.score:.2f}" + ("" if report.passed else " (failed: " + ", ".join(
                    c.name for c in report.checks if not c.passed) + ")")
        gap = np.full((2, rows[0].shape[1], 3), 255, np.uint8)
        path = args.out / f"strip-{name}.jpg"
        Image.fromarray(np.concatenate([rows[0], gap, rows[1]])).save(path, quality=88)
        print(f"{path}: {prompt!r}, {verdict}")


if __name__ == "__main__":
    main()
