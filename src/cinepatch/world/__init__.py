"""The procedural world: scenes, renderer, captions, prompt parser, evaluator, dataset.

The ground truth the default model is trained on and measured against; what every word
means on screen is fixed by WORLD.md (see docs/world.md for this implementation's choices).
``WorldVideoDataset`` needs torch and is imported on first use, so the rest stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cinepatch.world.captions import CAPTION_LEVELS, captions, dense_caption, random_scene
from cinepatch.world.evaluate import Check, EvalReport, evaluate
from cinepatch.world.parse import ParseResult, names_background, parse_prompt, parse_prompt_report, unknown_words, world_summary
from cinepatch.world.render import Layout, Track, layout, render, render_with_mask
from cinepatch.world.scene import Background, Pillar, Scene, SceneObject

if TYPE_CHECKING:
    from cinepatch.world.dataset import Bucket, WorldVideoDataset

__all__ = [
    "Scene",
    "SceneObject",
    "Background",
    "Pillar",
    "render",
    "render_with_mask",
    "layout",
    "Layout",
    "Track",
    "random_scene",
    "captions",
    "dense_caption",
    "CAPTION_LEVELS",
    "names_background",
    "parse_prompt",
    "parse_prompt_report",
    "ParseResult",
    "unknown_words",
    "world_summary",
    "evaluate",
    "EvalReport",
    "Check",
    "WorldVideoDataset",
    "Bucket",
]


def __getattr__(name: str) -> Any:
    if name in ("WorldVideoDataset", "Bucket"):
        from cinepatch.world import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'cinepatch.world' has no attribute {name!r}")
