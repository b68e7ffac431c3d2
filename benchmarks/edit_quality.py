"""Every edit's quality figures on a model, read by the world evaluator (issue: the edits).

    python benchmarks/edit_quality.py                        # the default model, 6 cases per edit
    python benchmarks/edit_quality.py --n 2 --only i2v,loop   # a quick look
    python benchmarks/edit_quality.py --long                  # + the 60 s vs 8 s memory run
    python benchmarks/edit_quality.py --model oracle          # the oracle: checks the script itself

Sources are world scenes (one object, no exits, pillars or pans, so every measurement has one
clear subject) rendered by the world's renderer at the model's native size and frame rate.
Each edit goes through ``Studio.create`` — which, on a model that reads scene plans, plans the
edit from its sources (docs/plans.md) — moderation, expansion, watermark and credentials as
a user gets them — with the visible corner mark off, because the pixel comparisons below
(image-to-video and re-cut PSNR) are about the edit, not the overlay. Figures:

- image-to-video: PSNR of the output's first frame against the image (target ≥ 28 dB).
- extend (forward and backward) / loop / blend (B on A's background, and B on its own): the
  mean absolute pixel change between frames at each joint over the motion next to it (the
  larger of the median changes of the three frame pairs before and after); where an edit hands
  kept frames over to new ones across a second (extend; blend and loop at both ends of their
  bridges), the largest such ratio over that second and the joint (`seam_ratio`, target ≤ 2).
  Extend also reads the same on the truth (`truth_seam_ratio`: the scene rendered whole, cut
  where the edit joins), for clips of a bouncing object too (`forward_bounce`,
  `backward_bounce`), and the change across the joint over the new part's own median change;
  every seam also over the whole clip's median change (`clip_seam`, which the world's own
  varying speeds push above 2); the evaluator on the new part.
- remix (default strength): one attribute (colour, shape or background) changed in the prompt;
  how often the evaluator finds the new attribute, the correlation of the object's centroid
  path with the source's, and the cases with both (the attribute found and correlation ≥ 0.9:
  target ≥ 5 of 6).
- re-cut: PSNR of the kept frames against the source (target ≥ 28 dB); the evaluator on the
  whole result.
- storyboard: each card's time span against that card's prompt (target ≥ 80 % pass).
- drag: a video's stored plan with the object's end point moved by a quarter of the frame,
  re-rendered with that plan; the share of frames on which the object (read from the pixels)
  is within 10 % of the frame's width of the edited box centre — or, where the edited box is
  off the canvas, not drawn (target ≥ 90 %).
- unedited: the seam measure on the model's own videos made whole, over every one-second span
  (a reference: what the measure reads where nothing was joined), as drawn and with the object
  still.
- long (``--long``): peak memory of a 60 s video against an 8 s one, each in its own process
  (target ≤ 1.25×), and the evaluator over the minute's 4 s windows (drift).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from cinepatch.app import Studio, VideoRequest
from cinepatch.config import load_config
from cinepatch.errors import Refused
from cinepatch.io.video import read_video, write_image, write_video
from cinepatch.world import Background, Scene, dense_caption, evaluate, random_scene, render
from cinepatch.world.pixels import COLOURS as _COLOURS, measure
from cinepatch.world.scene import BACKGROUNDS, OBJECT_COLOURS, SHAPES

SEED = 7
EDITS = ("i2v", "extend", "loop", "blend", "remix", "recut", "storyboard", "drag", "unedited")
_EDIT_KIND = {"i2v": "image", "drag": "None", "unedited": "None"}  # the request's edit, where it differs from the benchmark's name


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def changes(frames: np.ndarray) -> np.ndarray:
    """Mean absolute pixel change from each frame to the next, (T-1,)."""
    return np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))


def handover_seam(frames: np.ndarray, first: int, last: int, floor: float = 0.5, *, around: int = 3) -> float:
    """The largest change into frames ``first`` … ``last`` over the motion next to it: the
    larger of the median changes of the ``around`` frame pairs before it and after it. An edit
    that hands kept frames over to new ones across a second (redrawing the kept ones next to the
    joint) has no one joint, so every change of the handover and the joint counts.

    A jump (an object moved, a colour shifted) is larger than the motion on both sides of it;
    the world's own motion is not: on unedited renders cut at the same place this reads at most
    1.3, where the same change over the whole clip's median reads above 2 in 30 % of random
    scenes and 88 % of bouncing ones (speeds vary within a clip; a bounce is fastest at its
    impacts) — see `clip_seam`. The reference is floored at ``floor`` levels: a still scene's
    frames differ by the watermark's rounding alone, and where the output keeps frames of an
    encoded source, by what one more H.264 generation changes in them (`generation_loss`)."""
    d = changes(frames)
    ratios = []
    for j in range(max(1, first), min(len(frames) - 1, last) + 1):
        sides = [side for side in (d[max(0, j - 1 - around) : j - 1], d[j : j + around]) if len(side)]
        ratios.append(float(d[j - 1]) / max([float(np.median(side)) for side in sides] + [floor, 0.5]))
    return max(ratios)


def clip_seam(frames: np.ndarray, first: int, last: int, floor: float = 0.5) -> float:
    """The largest change into frames ``first`` … ``last`` over the median change of the whole
    clip outside them (floored as in `handover_seam`): the measure as the issue first worded it.
    Where the output ends still (an object run back off the canvas) the median is the floor, and
    where the motion's speed varies (a bounce) the clip's own fastest frames exceed 2×."""
    d = changes(frames)
    joints = list(range(max(1, first), min(len(frames) - 1, last) + 1))
    inside = np.delete(d, [j - 1 for j in joints])
    return max(float(d[j - 1]) for j in joints) / max(float(np.median(inside)), floor, 0.5)


def generation_loss(frames: np.ndarray, fps: float, workdir: Path) -> float:
    """Median per-frame mean absolute change when ``frames`` (already decoded) are encoded and
    decoded once more, as an edit does to the source frames it keeps."""
    again = read_video(write_video(workdir / "generation.mp4", frames, fps=fps)).frames
    return float(np.median(np.abs(again.astype(np.float32) - frames).mean(axis=(1, 2, 3))))


def path_correlation(source: np.ndarray, output: np.ndarray, fps: float, colour_a: str, colour_b: str) -> float | None:
    """Pearson correlation of the object's centroid path (source colour a, output colour b) on
    the axis it moves along most in the source; None if it barely moves (< 3 px)."""
    ma, mb = measure(source, fps=fps), measure(output, fps=fps)
    a, b = _COLOURS.index(colour_a), _COLOURS.index(colour_b)
    seen = (ma.area[:, a] > 0) & (mb.area[:, b] > 0)
    if seen.sum() < 4:
        return 0.0  # the object is lost in the output: no path to follow
    axes = [(ma.cx[seen, a], mb.cx[seen, b]), (ma.cy[seen, a], mb.cy[seen, b])]
    p, q = max(axes, key=lambda pq: float(np.ptp(pq[0])))
    if float(np.ptp(p)) < 3 or float(np.std(q)) == 0:
        return None
    return float(np.corrcoef(p, q)[0, 1])


class Bench:
    def __init__(self, model: str, workdir: Path) -> None:
        config = load_config(None, config_dir=workdir / "config", data_dir=workdir / "data")
        self.studio = Studio(replace(config, visible_mark=False))
        self.model = model
        self.workdir = workdir
        backend, _ = self.studio.backend(model)
        self.width, self.height = backend.default_size
        self.fps = backend.default_fps
        self.rng = np.random.default_rng(SEED)
        self.count = 0
        self.last = None  # the last VideoResult (its plan)
        self.withheld: Counter[str] = Counter()  # edit -> outputs the frame review withheld

    def scene(self) -> Scene:
        return random_scene(self.rng, max_objects=1, exits=False, pillar=False, pan=False)

    def render(self, scene: Scene, seconds: float) -> np.ndarray:
        return render(scene, width=self.width, height=self.height, fps=self.fps,
                      frames=round(seconds * self.fps), seed=int(self.rng.integers(1 << 30)))  # fmt: skip

    def encoded(self, frames: np.ndarray, name: str) -> tuple[np.ndarray, Path]:
        path = write_video(self.workdir / f"{name}.mp4", frames, fps=self.fps)
        return read_video(path).frames, path  # what an edit reads (after H.264)

    def source(self, scene: Scene, seconds: float, name: str) -> tuple[np.ndarray, Path]:
        return self.encoded(self.render(scene, seconds), name)

    def create(self, prompt: str, **kwargs) -> np.ndarray | None:
        """The edit's frames as a user gets them; None (and counted) when the frame review
        withholds the output, as it would for a user."""
        self.count += 1
        out = self.workdir / f"out-{self.count}.mp4"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            request = VideoRequest(prompt=prompt, model=self.model, fps=self.fps, seed=self.count,
                                   width=self.width, height=self.height, **kwargs)  # fmt: skip
            try:
                self.last = self.studio.create(request, out=out)
            except Refused as exc:
                if exc.stage != "output":
                    raise
                self.withheld[str(kwargs.get("edit"))] += 1
                return None
        frames = read_video(out).frames
        out.unlink()
        return frames

    def judge(self, frames: np.ndarray, prompt: str) -> float:
        return evaluate(frames, fps=self.fps, prompt=prompt).score


def run_i2v(b: Bench, n: int) -> dict:
    scores, quality = [], []
    for i in range(n):
        scene = b.scene()
        still = render(scene, width=b.width, height=b.height, fps=b.fps, frames=1, seed=i)[0]
        image = write_image(b.workdir / f"still-{i}.png", still)
        prompt = dense_caption(scene)
        out = b.create(prompt, seconds=4, edit="image", sources=(image,), params={"at": "start"})
        if out is None:
            continue
        scores.append(psnr(out[0], still))
        quality.append(b.judge(out, prompt))
    return {"first_frame_psnr_db": scores, "evaluator": quality}


def run_extend(b: Bench, n: int) -> dict:
    """``n`` random scenes each way, then ``n`` bouncing ones each way (a bounce is one motion
    of several in a random scene, and the one a straight continuation gets most wrong). Each
    scene is rendered for the output's 4 s; its first 2 s are the source of a forward extend,
    its last 2 s of a backward one, and the whole render is the truth: what a perfect extend
    would be, measured at the same joint (`truth_seam_ratio`)."""
    cases = [(direction, "") for _ in range(n) for direction in ("forward", "backward")]
    cases += [(direction, "_bounce") for _ in range(n) for direction in ("forward", "backward")]
    figures: dict[str, dict[str, list[float]]] = {"seam_ratio": {}, "truth_seam_ratio": {}, "clip_seam": {}, "seam_over_new_part": {}}
    quality = []
    for i, (direction, kind) in enumerate(cases):
        scene = b.scene()
        if kind:
            scene = replace(scene, objects=tuple(replace(o, motion="bounce", speed="normal", start=None) for o in scene.objects))
        whole = b.render(scene, 4)
        kept = whole[: 2 * b.fps] if direction == "forward" else whole[2 * b.fps :]
        source, path = b.encoded(kept, f"extend-{i}-{direction}")
        truth, _ = b.encoded(whole, f"extend-{i}-truth")
        prompt = dense_caption(scene)
        out = b.create(prompt, seconds=2, edit="extend", sources=(path,), params={"seconds": 2, "direction": direction})
        if out is None:
            continue
        joint = len(source) if direction == "forward" else len(out) - len(source)
        span = (joint - b.fps, joint) if direction == "forward" else (joint, joint + b.fps)  # the handover, then the joint
        floor = generation_loss(source, b.fps, b.workdir)
        new = out[len(source) :] if direction == "forward" else out[:joint]
        for name, value in (("seam_ratio", handover_seam(out, *span, floor)),
                            ("truth_seam_ratio", handover_seam(truth, *span, floor)),
                            ("clip_seam", clip_seam(out, *span, floor)),
                            ("seam_over_new_part", seam_over_new_part(out, joint, new))):  # fmt: skip
            figures[name].setdefault(direction + kind, []).append(value)
        quality.append(b.judge(new, prompt))
    return {**figures, "evaluator_new_part": quality}


def seam_over_new_part(frames: np.ndarray, joint: int, new: np.ndarray) -> float:
    """The change across the joint over the median frame-to-frame change of the new part alone:
    about 1 when the joint is no rougher than the model's own frames, whatever the source's."""
    across = float(np.abs(frames[joint].astype(np.float32) - frames[joint - 1]).mean())
    inside = changes(new)
    return across / max(float(np.median(inside)), 0.5)


def run_loop(b: Bench, n: int) -> dict:
    seams, whole_clip, quality = [], [], []
    for _ in range(n):
        prompt = dense_caption(b.scene())
        out = b.create(prompt, seconds=4, edit="loop", params={"bridge": 1})
        if out is None:
            continue
        bridge = b.fps  # params: one second
        twice = np.concatenate([out, out[: b.fps + 4]])  # the loop's last → first frame is a joint
        # the video's end hands over to the bridge, the bridge to the opening: each second and joint
        spans = [(len(out) - bridge - b.fps, len(out) - bridge), (len(out), len(out) + b.fps)]
        seams += [handover_seam(twice, *span) for span in spans]
        whole_clip += [clip_seam(twice[: len(out) + b.fps + 1], *span) for span in spans]
        quality.append(b.judge(out, prompt))
    return {"seam_ratio": seams, "clip_seam": whole_clip, "evaluator": quality}


def run_blend(b: Bench, n: int) -> dict:
    """Each case joins A to B twice: B on A's background (the world can carry everything across
    the bridge), and B as drawn — on another background the world has no way from one to the
    other, so the joint is a cut (the oracle's too) and the seam measures the cut."""
    seams: dict[str, list[float]] = {"same_background": [], "other_background": []}
    whole_clip: dict[str, list[float]] = {"same_background": [], "other_background": []}
    quality = []
    for i in range(n):
        first_scene, drawn = b.scene(), b.scene()
        first, path_a = b.source(first_scene, 2, f"blend-a-{i}")
        for kind, second_scene in (("same_background", replace(drawn, background=first_scene.background)),
                                   ("other_background", drawn)):
            second, path_b = b.source(second_scene, 2, f"blend-b-{i}")
            prompt = f"{dense_caption(first_scene).rstrip('.')}, then {dense_caption(second_scene)}"
            out = b.create(prompt, seconds=1, edit="blend", sources=(path_a, path_b), params={"transition": 1})
            if out is None:
                continue
            bridge = len(out) - len(first) - len(second)
            floor = max(generation_loss(first, b.fps, b.workdir), generation_loss(second, b.fps, b.workdir))
            spans = [(len(first) - b.fps, len(first)), (len(first) + bridge, len(first) + bridge + b.fps)]  # out of A, into B
            seams[kind] += [handover_seam(out, *span, floor) for span in spans]
            whole_clip[kind] += [clip_seam(out, *span, floor) for span in spans]
            quality.append(b.judge(out[len(first) : len(first) + bridge], dense_caption(second_scene)))
    return {"seam_ratio": seams, "clip_seam": whole_clip, "evaluator_transition_vs_second": quality}


def _changed(b: Bench, scene: Scene, attribute: str) -> tuple[Scene, str, str]:
    """The scene with one attribute changed; the check name and the object colour to follow."""
    obj = scene.objects[0]
    if attribute == "colour":
        colour = str(b.rng.choice([c for c in OBJECT_COLOURS if c != obj.colour]))
        return replace(scene, objects=(replace(obj, colour=colour),)), "colour", colour
    if attribute == "shape":
        shape = str(b.rng.choice([s for s in SHAPES if s != obj.shape]))
        return replace(scene, objects=(replace(obj, shape=shape),)), "shape", obj.colour
    colour = str(b.rng.choice([c for c in BACKGROUNDS if c != scene.background.colour]))
    return replace(scene, background=Background(colour, scene.background.texture)), "background", obj.colour


def run_remix(b: Bench, n: int) -> dict:
    found: dict[str, list[bool]] = {"colour": [], "shape": [], "background": []}
    correlations: list[float] = []
    both: list[bool] = []
    for i in range(n):
        for attribute in found:
            scene = b.scene()
            if scene.objects[0].colour == "white" or scene.background.colour == scene.objects[0].colour:
                scene = replace(scene, objects=(replace(scene.objects[0], colour="red"),))
            source, path = b.source(scene, 4, f"remix-{i}-{attribute}")
            new_scene, check, colour = _changed(b, scene, attribute)
            out = b.create(dense_caption(new_scene), seconds=4, edit="remix", sources=(path,))
            if out is None:
                continue
            report = evaluate(out, fps=b.fps, scene=new_scene)
            present = all(c.passed for c in report.checks if c.name == check)
            found[attribute].append(present)
            r = path_correlation(source, out, b.fps, scene.objects[0].colour, colour)
            if r is not None:
                correlations.append(r)
            both.append(present and (r is None or r >= 0.9))  # a still source has no path to lose
    return {"new_attribute_found": {k: v for k, v in found.items()}, "path_correlation": correlations,
            "attribute_and_motion_kept": both}


def run_recut(b: Bench, n: int) -> dict:
    kept_psnr, quality = [], []
    for i in range(n):
        scene = b.scene()
        source, path = b.source(scene, 4, f"recut-{i}")
        prompt = dense_caption(scene)
        out = b.create(prompt, seconds=4, edit="recut", sources=(path,), params={"ranges": [[1, 2]], "at": 1})
        if out is None:
            continue
        a, z = b.fps, 2 * b.fps
        kept_psnr.append(psnr(out[a:z], source[a:z]))
        quality.append(b.judge(out, prompt))
    return {"kept_psnr_db": kept_psnr, "evaluator": quality}


def run_storyboard(b: Bench, n: int) -> dict:
    passes, scores = [], []
    for _ in range(n):
        prompts = [dense_caption(b.scene()) for _ in range(2)]
        cards = [{"at": 0, "prompt": prompts[0]}, {"at": 4, "prompt": prompts[1]}]
        out = b.create(prompts[0], seconds=8, edit="storyboard", params={"cards": cards})
        if out is None:
            continue
        for k, prompt in enumerate(prompts):
            report = evaluate(out[k * 4 * b.fps : (k + 1) * 4 * b.fps], fps=b.fps, prompt=prompt)
            passes.append(report.passed)
            scores.append(report.score)
    return {"card_passed": passes, "card_score": scores}


def run_drag(b: Bench, n: int) -> dict:
    """Trajectory control: move a video's end point, re-render its plan, follow the object."""
    from cinepatch.editing.reading import read_frames

    followed = []
    for i in range(n):
        scene = b.scene()
        prompt = dense_caption(scene)
        if b.create(prompt, seconds=4) is None or b.last.plan is None:
            continue  # withheld, or a model that reads no plans: nothing to drag
        plan = b.last.plan
        obj = plan.objects[0]
        track = obj.track.copy()
        centre = (track[-1, :2] + track[-1, 2:]) / 2
        # the end point a quarter of the frame towards the middle, faded in over the clip
        shift = np.where(centre < 0.5, 0.25, -0.25)
        ramp = np.linspace(0.0, 1.0, len(track))[:, None]
        track += ramp * np.concatenate([shift, shift])[None, :]
        moved = replace(plan, objects=(replace(obj, boxes=tuple(map(tuple, track.tolist()))), *plan.objects[1:]))
        out = b.create(prompt, seconds=4, plan=moved)
        if out is None:
            continue
        reading = read_frames(out, fps=b.fps).plan
        colour = obj.phrase.split()[-2]
        match = [o for o in (reading.objects if reading else ()) if colour in o.phrase]
        if not match:
            followed.append(0.0)
            continue
        got = match[0].track
        distance = np.hypot(((got[:, 0] + got[:, 2]) - (track[:, 0] + track[:, 2])) / 2 * b.width,
                            ((got[:, 1] + got[:, 3]) - (track[:, 1] + track[:, 3])) / 2 * b.height) / b.width
        # where the edited box is off the canvas (an object that has left) the reader can only
        # hold the last place it saw the object: there, followed means not drawn
        seen = measure(out, fps=b.fps).area[:, _COLOURS.index(colour)] > 0
        on = (track[:, 2] > 0) & (track[:, 0] < 1) & (track[:, 3] > 0) & (track[:, 1] < 1)
        followed.append(float(np.where(on, distance <= 0.10, ~seen).mean()))
    return {"frames_within_10pct": followed}


def run_unedited(b: Bench, n: int) -> dict:
    """The seam measure where there is no seam: the model's own 4 s videos, made whole, read
    over each one-second span (frames 5–12, 13–20, 21–28) — as drawn, and with the object still."""
    seams: dict[str, list[float]] = {"as_drawn": [], "still": []}
    for i in range(n):
        drawn = b.scene()
        still = replace(drawn, objects=tuple(replace(o, motion="still", speed="normal") for o in drawn.objects))
        for kind, scene in (("as_drawn", drawn), ("still", still)):
            out = b.create(dense_caption(scene), seconds=4)
            if out is not None:
                seams[kind] += [handover_seam(out, first, first + 7) for first in (5, 13, 21)]
    return {"seam_ratio": seams}


def run_long(model: str) -> dict:
    """60 s and 8 s, each in a fresh process: peak RSS and RSS after loading, and the windows."""
    figures = {}
    for seconds in (8, 60):
        code = f"""
import json, sys, tempfile, warnings
from pathlib import Path
from cinepatch.app import Studio, VideoRequest
from cinepatch.config import load_config
from cinepatch.io.video import read_video
from cinepatch.world import evaluate
warnings.simplefilter("ignore")
work = Path(tempfile.mkdtemp())
studio = Studio(load_config(None, config_dir=work / "c", data_dir=work / "d"))
backend, _ = studio.backend({model!r})
def peak():  # VmHWM, not ru_maxrss: Linux carries the parent's maxrss across fork and exec
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
loaded = peak()
prompt = "a small red circle bounces on a navy background"
start = __import__("time").perf_counter()
studio.create(VideoRequest(prompt=prompt, model={model!r}, seconds={seconds}, seed=1), out=work / "v.mp4")
took = __import__("time").perf_counter() - start
top = peak()
video = read_video(work / "v.mp4")
w = 4 * round(video.fps)
windows = [evaluate(video.frames[k:k + w], fps=video.fps, prompt=prompt).score for k in range(0, len(video.frames) - w + 1, w)]
json.dump({{"loaded_mib": loaded / 1024, "peak_mib": top / 1024, "seconds": took, "windows": windows}}, sys.stdout)
"""
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        figures[f"{seconds}s"] = json.loads(result.stdout)
    short, long = figures["8s"], figures["60s"]
    figures["peak_ratio"] = long["peak_mib"] / short["peak_mib"]
    # Loading the checkpoint has its own peak; generation may never rise above it (then the
    # short run's growth is 0 and no ratio of growths exists).
    figures["growth_mib"] = {k: figures[k]["peak_mib"] - figures[k]["loaded_mib"] for k in ("8s", "60s")}
    return figures


def summarise(name: str, result: dict) -> list[str]:
    lines = []
    for key, values in result.items():
        if isinstance(values, dict):
            for sub, vals in values.items():
                if vals and not isinstance(vals[0], bool):  # figures: median and the worst
                    lines.append(f"  {name}.{key}.{sub}: median {statistics.median(vals):.2f}, max {max(vals):.2f} "
                                 f"(n={len(vals)})")  # fmt: skip
                else:
                    lines.append(f"  {name}.{key}.{sub}: {np.mean(vals) if vals else float('nan'):.3f} (n={len(vals)})")
        elif values and isinstance(values[0], bool):
            lines.append(f"  {name}.{key}: {np.mean(values):.3f} (n={len(values)})")
        elif values:
            lines.append(f"  {name}.{key}: median {statistics.median(values):.2f}, min {min(values):.2f}, "
                         f"max {max(values):.2f} (n={len(values)})")  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=6, help="cases per edit (remix: per attribute)")
    ap.add_argument("--only", default=",".join(EDITS), help=f"comma-separated subset of {','.join(EDITS)}")
    ap.add_argument("--long", action="store_true", help="also the 60 s vs 8 s run")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args()
    chosen = [e.strip() for e in args.only.split(",") if e.strip()]
    unknown = set(chosen) - set(EDITS)
    if unknown:
        ap.error(f"--only: unknown edit(s) {sorted(unknown)}; choose from {', '.join(EDITS)}")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench("world" if args.model == "oracle" else args.model, Path(tmp))  # "oracle": the world oracle
        print(f"model {args.model}: {bench.width}x{bench.height} at {bench.fps} fps, {args.n} cases per edit")
        for name in chosen:
            start = time.perf_counter()
            results[name] = globals()[f"run_{name}"](bench, args.n)
            results[name]["wall_s"] = [time.perf_counter() - start]
            results[name]["withheld_by_frame_review"] = [bench.withheld[_EDIT_KIND.get(name, name)]]
            print("\n".join(summarise(name, results[name])), flush=True)
    if args.long:
        results["long"] = run_long(args.model)
        long = results["long"]
        print(f"  long: peak {long['8s']['peak_mib']:.0f} MiB (8 s) vs {long['60s']['peak_mib']:.0f} MiB (60 s): "
              f"×{long['peak_ratio']:.2f}; above the loading peak +{long['growth_mib']['8s']:.0f} "
              f"MiB (8 s), +{long['growth_mib']['60s']:.0f} MiB (60 s); "
              f"60 s took {long['60s']['seconds']:.0f} s; evaluator per 4 s window: "
              + " ".join(f"{s:.2f}" for s in long["60s"]["windows"]))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
