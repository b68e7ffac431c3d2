"""The procedural world as a training source: an endless, seeded supply of captioned clips.

Sample ``index`` of a bucket is rendered from a scene drawn with the seed ``(seed, index)``, so
the stream needs no state beyond the step number: every rank of a distributed run and every
resumed run draws exactly the same clips.
"""

from __future__ import annotations

import numpy as np
import torch

from cinepatch.data.buckets import Bucket
from cinepatch.data.folder import Clip, fit_frames

__all__ = ["WorldSource", "HOLDOUT", "held_out", "CAPTION_WEIGHTS"]

# Recaptioning, as Sora and DALL·E 3 train: the dense caption most of the time, terser ones
# the rest, so the model reads every detail yet still answers a short prompt.
CAPTION_WEIGHTS: dict[str, float] = {"dense": 0.7, "medium": 0.15, "terse": 0.15}

# Combinations the default model never sees together in training, so the evaluation suite can
# measure generalisation to unseen combinations honestly (benchmarks/default_model_eval.py).
HOLDOUT: dict[str, tuple[tuple[str, str], ...]] = {
    "colour+shape": (("purple", "triangle"), ("orange", "square")),
    "shape+motion": (("circle", "shrink"), ("triangle", "bounce")),
    "colour+background": (("green", "brown"), ("white", "sky")),
}


def held_out(scene) -> bool:  # scene: cinepatch.world.Scene
    """Whether ``scene`` shows a combination in :data:`HOLDOUT`."""
    for obj in scene.objects:
        if (obj.colour, obj.shape) in HOLDOUT["colour+shape"]:
            return True
        if (obj.shape, obj.motion) in HOLDOUT["shape+motion"]:
            return True
        if (obj.colour, scene.background.colour) in HOLDOUT["colour+background"]:
            return True
    return False


class WorldSource:
    """Clips of random world scenes in any bucket, with a caption of a random level of detail."""

    def __init__(
        self,
        buckets: list[Bucket],
        *,
        fps: float,
        seed: int = 0,
        image_fraction: float = 0.2,
        holdout: bool = False,
        caption_weights: dict[str, float] | None = None,
        focus: bool = False,
        plans: bool = False,
    ) -> None:
        self.buckets = buckets
        self.fps = fps
        self.seed = seed
        self.image_fraction = image_fraction
        self.holdout = holdout  # True: never draw a scene with a HOLDOUT combination
        self.focus = focus  # True: each clip also carries its objects' coverage (Clip.focus)
        self.plans = plans  # True: each clip also carries its scene plan (Clip.plan)
        weights = caption_weights or CAPTION_WEIGHTS
        self.levels = tuple(weights)
        total = sum(weights.values())
        self.level_p = np.array([weights[level] / total for level in self.levels])

    def weights(self) -> dict[Bucket, float]:
        """Image buckets share ``image_fraction`` of the draws, video buckets the rest."""
        images = [b for b in self.buckets if b.is_image]
        videos = [b for b in self.buckets if not b.is_image]
        if not images or not videos:
            return {b: 1.0 for b in self.buckets}
        weights = {b: self.image_fraction / len(images) for b in images}
        weights.update({b: (1.0 - self.image_fraction) / len(videos) for b in videos})
        return weights

    def get(self, bucket: Bucket, index: int) -> Clip:
        from cinepatch import world
        from cinepatch.planning.world import plan_from_scene

        rng = np.random.default_rng([self.seed, index])
        # A still image must not show an object that enters later: it would be off-canvas.
        scene = world.random_scene(rng, exits=not bucket.is_image)
        while self.holdout and held_out(scene):
            scene = world.random_scene(rng, exits=not bucket.is_image)
        shape = dict(width=bucket.width, height=bucket.height, fps=self.fps, frames=bucket.frames)
        seed = int(rng.integers(2**31))
        if self.focus:
            frames, focus = world.render_with_mask(scene, **shape, seed=seed)
        else:
            frames, focus = world.render(scene, **shape, seed=seed), None
        plan = plan_from_scene(scene, **shape, seed=seed) if self.plans else None
        levels = world.captions(scene, rng)
        caption = levels[self.levels[int(rng.choice(len(self.levels), p=self.level_p))]]
        video = fit_frames(np.asarray(frames), bucket.width, bucket.height)  # renders are bucket-sized
        return Clip(video, caption, None if focus is None else torch.from_numpy(focus), plan)
