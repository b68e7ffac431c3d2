"""The procedural world as a training source: an endless, seeded supply of captioned clips.

Sample ``index`` of a bucket is rendered from a scene drawn with the seed ``(seed, index)``, so
the stream needs no state beyond the step number: every rank of a distributed run and every
resumed run draws exactly the same clips.
"""

from __future__ import annotations

import numpy as np

from cinepatch.data.buckets import Bucket
from cinepatch.data.folder import Clip, fit_frames

__all__ = ["WorldSource"]


class WorldSource:
    """Clips of random world scenes in any bucket, with a caption of a random level of detail."""

    def __init__(
        self, buckets: list[Bucket], *, fps: float, seed: int = 0, image_fraction: float = 0.2
    ) -> None:
        self.buckets = buckets
        self.fps = fps
        self.seed = seed
        self.image_fraction = image_fraction

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

        rng = np.random.default_rng([self.seed, index])
        # A still image must not show an object that enters later: it would be off-canvas.
        scene = world.random_scene(rng, exits=not bucket.is_image)
        frames = world.render(
            scene, width=bucket.width, height=bucket.height, fps=self.fps, frames=bucket.frames,
            seed=int(rng.integers(2**31)),
        )
        levels = world.captions(scene, rng)
        caption = levels[world.CAPTION_LEVELS[int(rng.integers(len(world.CAPTION_LEVELS)))]]
        return Clip(fit_frames(np.asarray(frames), bucket.width, bucket.height), caption)
