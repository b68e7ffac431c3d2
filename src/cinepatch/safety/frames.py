"""Frame review: NudeNet's detector (``320n.onnx`` from the ``nudenet`` package) on frames.

What it covers: exposed genitalia, breasts, buttocks and anus (nudity). What it does NOT
cover: violence, gore, weapons, hate symbols, or the age of a person — a generated or
uploaded frame showing those passes this review. Prompt moderation is the line for them.

Generated output is sampled evenly (``sample`` frames, first and last included); a
user-supplied image or video (``stage="input"``) is reviewed frame by frame.

The seam below the user-facing functions is ``Detector``: ``scores(frames) -> (N, C)``,
the highest confidence per class over all anchors of each frame. ``NudeNetDetector`` is
the real one; tests inject a fake detector there to exercise the decision path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from cinepatch.errors import InvalidParameter, Refused

__all__ = [
    "NUDENET_LABELS",
    "EXPOSED_LABELS",
    "Detector",
    "NudeNetDetector",
    "FrameThresholds",
    "ReviewResult",
    "review_frames",
    "check_frames",
]

# The class order of 320n.onnx, as listed in nudenet/nudenet.py (3.4.2).
NUDENET_LABELS: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED",
    "BELLY_COVERED", "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE",
    "BELLY_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
# The classes that make a frame sexual content. Male chests, bellies, feet and armpits do not.
EXPOSED_LABELS: frozenset[str] = frozenset({
    "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED", "ANUS_EXPOSED",
})

_INPUT = 320
_BATCH = 8
Stage = Literal["output", "input"]


class Detector(Protocol):
    """Per-frame class confidences: ``scores((N,H,W,3) uint8 RGB) -> (N, len(labels))``."""

    labels: tuple[str, ...]

    def scores(self, frames: np.ndarray) -> np.ndarray: ...


class NudeNetDetector:
    """NudeNet 3.4's ``320n.onnx`` run with onnxruntime directly.

    Preprocessing matches ``nudenet.NudeDetector`` (pad bottom/right to a square, bilinear
    resize to 320, RGB in 0..1, NCHW); frames are batched. Instead of boxes after NMS it
    returns the highest class confidence over all anchors, which is what a decision needs.
    """

    labels = NUDENET_LABELS

    def __init__(self, model_path: Path | None = None) -> None:
        import onnxruntime as ort

        if model_path is None:
            import nudenet

            model_path = Path(nudenet.__file__).parent / "320n.onnx"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2  # the machines here have 2 cores
        self._session = ort.InferenceSession(str(model_path), sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    @staticmethod
    def preprocess(frames: np.ndarray) -> np.ndarray:
        """(N,H,W,3) uint8 RGB -> (N,3,320,320) float32 in 0..1."""
        import cv2

        n, h, w, _ = frames.shape
        side = max(h, w)
        out = np.empty((n, 3, _INPUT, _INPUT), np.float32)
        for i in range(n):
            square = np.zeros((side, side, 3), np.uint8)
            square[:h, :w] = frames[i]
            small = cv2.resize(square, (_INPUT, _INPUT), interpolation=cv2.INTER_LINEAR)
            out[i] = small.transpose(2, 0, 1).astype(np.float32) / 255.0
        return out

    def scores(self, frames: np.ndarray) -> np.ndarray:
        result = []
        for i in range(0, len(frames), _BATCH):
            x = self.preprocess(frames[i:i + _BATCH])
            (raw,) = self._session.run(None, {self._input: x})  # (B, 4 + C, anchors)
            result.append(raw[:, 4:, :].max(axis=-1))  # (B, C)
        return np.concatenate(result).astype(np.float32)


_lock = threading.Lock()
_detector: NudeNetDetector | None = None


def _default_detector() -> NudeNetDetector:
    global _detector
    if _detector is None:
        with _lock:
            if _detector is None:
                _detector = NudeNetDetector()
    return _detector


@dataclass(frozen=True)
class FrameThresholds:
    """Confidence of an exposed class at or above ``block`` refuses; ``review``..``block``
    is let through but marked for human review."""

    block: float = 0.45
    review: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 < self.review <= self.block <= 1.0:
            raise InvalidParameter("thresholds", (self.review, self.block),
                                   "0 < review <= block <= 1")


@dataclass(frozen=True)
class ReviewResult:
    allowed: bool
    category: str | None  # "sexual" when refused, else None
    stage: Stage
    frames_checked: tuple[int, ...]
    flagged_frames: tuple[int, ...]  # frames with an exposed class at or above ``block``
    review: bool  # some exposed class in the review band (or above)
    scores: dict[str, float] = field(default_factory=dict)  # label -> max over checked frames
    reason: str = ""


def _validate(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 \
            or frames.shape[-1] != 3 or frames.shape[0] == 0:
        got = (f"{type(frames).__name__} {getattr(frames, 'dtype', '')} "
               f"{getattr(frames, 'shape', '')}")
        raise InvalidParameter("frames", got.strip(),
                               "a uint8 array of shape (T, H, W, 3), T >= 1 (an image is (1, H, W, 3))")


def _sample_indices(t: int, sample: int, stage: Stage) -> np.ndarray:
    if stage == "input" or sample >= t:
        return np.arange(t)
    return np.unique(np.round(np.linspace(0, t - 1, sample)).astype(np.int64))


def review_frames(
    frames: np.ndarray,
    *,
    sample: int = 8,
    stage: Stage = "output",
    thresholds: FrameThresholds = FrameThresholds(),
    detector: Detector | None = None,
) -> ReviewResult:
    """Review frames for nudity. ``stage="output"`` samples ``sample`` frames evenly;
    ``stage="input"`` (user-supplied media) reviews every frame."""
    _validate(frames)
    if stage not in ("output", "input"):
        raise InvalidParameter("stage", stage, "'output' or 'input'")
    if sample < 1:
        raise InvalidParameter("sample", sample, "1 or more")
    det = detector if detector is not None else _default_detector()
    idx = _sample_indices(frames.shape[0], sample, stage)
    scores = np.asarray(det.scores(frames[idx]), np.float32)  # (N, C)
    if scores.shape != (len(idx), len(det.labels)):
        raise ValueError(f"detector returned {scores.shape}, expected {(len(idx), len(det.labels))}")
    exposed = [j for j, name in enumerate(det.labels) if name in EXPOSED_LABELS]
    worst = scores[:, exposed].max(axis=1) if exposed else np.zeros(len(idx), np.float32)
    flagged = tuple(int(i) for i in idx[worst >= thresholds.block])
    review = bool((worst >= thresholds.review).any())
    per_label = {name: float(scores[:, j].max()) for j, name in enumerate(det.labels)}
    if flagged:
        top = max(exposed, key=lambda j: float(scores[:, j].max()))
        reason = (f"{det.labels[top]} {per_label[det.labels[top]]:.2f} >= {thresholds.block} "
                  f"in frame(s) {list(flagged)}")
    elif review:
        reason = f"exposed-body score in the review band [{thresholds.review}, {thresholds.block})"
    else:
        reason = ""
    return ReviewResult(
        allowed=not flagged,
        category="sexual" if flagged else None,
        stage=stage,
        frames_checked=tuple(int(i) for i in idx),
        flagged_frames=flagged,
        review=review,
        scores=per_label,
        reason=reason,
    )


_MESSAGES: dict[Stage, str] = {
    "output": "The generated video was withheld: frame review found nudity, which cinepatch "
              "does not produce. Try a different prompt.",
    "input": "The uploaded image or video was refused: frame review found nudity, which "
             "cinepatch does not accept as input.",
}


def check_frames(
    frames: np.ndarray,
    *,
    sample: int = 8,
    stage: Stage = "output",
    thresholds: FrameThresholds = FrameThresholds(),
    detector: Detector | None = None,
) -> ReviewResult:
    """``review_frames``, raising ``Refused("sexual", ..., stage=stage)`` when refused."""
    result = review_frames(frames, sample=sample, stage=stage, thresholds=thresholds,
                           detector=detector)
    if not result.allowed:
        raise Refused(result.category or "sexual", _MESSAGES[stage], stage=stage)
    return result
