"""Safety: prompt moderation and frame review, offline by default.

- ``moderate_prompt(text, *, config=None) -> ModerationResult`` /
  ``check_prompt(...)`` raising ``Refused(category, message, stage="prompt")``:
  a normalised lexicon plus a small MLP head on numpy MiniLM embeddings with a review band,
  and an optional OpenAI-compatible moderation endpoint (``SafetyConfig``).
- ``review_frames(frames, *, sample=16, stage="output"|"input") -> ReviewResult`` /
  ``check_frames(...)`` raising ``Refused("sexual", message, stage=stage)``: NudeNet's
  ``320n.onnx`` detector (nudity only; not violence or gore).

Importing this package loads no model; models load on first use, once, thread-safely.
Nothing here imports torch. See docs/safety.md for the evaluation and its limits.
"""

from cinepatch.safety.frames import (
    EXPOSED_LABELS,
    Detector,
    FrameThresholds,
    NudeNetDetector,
    ReviewResult,
    check_frames,
    review_frames,
)
from cinepatch.safety.moderation import (
    CATEGORIES,
    USER_MESSAGES,
    ModerationResult,
    SafetyConfig,
    check_prompt,
    moderate_prompt,
)

__all__ = [
    "CATEGORIES",
    "USER_MESSAGES",
    "SafetyConfig",
    "ModerationResult",
    "moderate_prompt",
    "check_prompt",
    "EXPOSED_LABELS",
    "Detector",
    "NudeNetDetector",
    "FrameThresholds",
    "ReviewResult",
    "review_frames",
    "check_frames",
]
