"""Frame review: NudeNet's detector (``320n.onnx`` from the ``nudenet`` package) on frames.

What it covers: exposed genitalia, breasts, buttocks and anus (nudity). What it does NOT
cover: violence, gore, weapons, hate symbols, or the age of a person — a generated or
uploaded frame showing those passes this review. Prompt moderation is the line for them.

Generated output is sampled evenly (``sample`` frames, first and last included); a
user-supplied image or video (``stage="input"``) is reviewed frame by frame.

A detector that fires on anything stops being believed, so the decision knows the
detector's limits (``FrameThresholds``; the measurements behind each default are in
docs/safety.md, "Frame review"):

- a detection counts only when it is an exposed class and its box is at least
  ``min_region`` of the frame's shorter side — a speck cannot show anatomy;
- it needs ``block`` when the same frame shows the rest of a body (a face, feet, belly,
  armpits or a covered part scoring ``context`` or more), and ``lone_block`` when it is a
  part alone: next to every false detection measured on harmless videos the other classes
  stayed at 0.31 or less, while Big Buck Bunny's white chest reads as an exposed breast at up to
  0.75 and the candidate model's blobs as genitalia at up to 0.74;
- a video is withheld only when ``agree`` sampled frames each hold a counted detection (an
  image, or a clip of fewer frames, needs all of them): nudity that is really there stays on
  screen, while many of the detector's mistakes on generated blobs hold for one frame;
- below ``trusted_side`` pixels (the shorter side) the detector sees its 320-pixel input
  upsampled two times or more, far from what it was trained on; there it reads a soft blob on
  a checked or plain backdrop as genitalia filling the whole frame, at up to 0.9 (upscaling
  64² output to 128² does not help), so at that size a box covering ``fill`` or more of both
  the frame's width and height does not count.

Any exposed class scoring ``review`` or more sets ``review=True`` on the result, so a video
that is allowed can still be looked at by a person.

The seam below the user-facing functions is ``Detector``: ``detect(frames)`` returns each
frame's detections with boxes. ``NudeNetDetector`` is the real one; tests inject fakes there.
A ``ClassScorer`` (per-class scores, no boxes) is accepted too; its scores are unlocated
detections, judged on score and agreement alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from cinepatch.errors import InvalidParameter, Refused

__all__ = [
    "NUDENET_LABELS",
    "EXPOSED_LABELS",
    "Detection",
    "Detector",
    "ClassScorer",
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
_FLOOR = 0.2  # NudeNet's own: anchors below it are not detections
_NMS_IOU = 0.45  # NudeNet's own
Stage = Literal["output", "input"]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """``label`` scored ``score`` over ``box`` = (x0, y0, x1, y1) in the frame's pixels;
    ``box=None`` when the detector does not locate what it scores (then no size rule applies)."""

    label: str
    score: float
    box: Box | None = None


class Detector(Protocol):
    """Detections per frame: ``detect((N,H,W,3) uint8 RGB) -> N sequences of Detection``."""

    labels: tuple[str, ...]

    def detect(self, frames: np.ndarray) -> Sequence[Sequence[Detection]]: ...


class ClassScorer(Protocol):
    """Per-frame class confidences without boxes: ``scores(frames) -> (N, len(labels))``."""

    labels: tuple[str, ...]

    def scores(self, frames: np.ndarray) -> np.ndarray: ...


class NudeNetDetector:
    """NudeNet 3.4's ``320n.onnx`` run with onnxruntime directly.

    Preprocessing matches ``nudenet.NudeDetector`` (pad bottom/right to a square, bilinear
    resize to 320, RGB in 0..1, NCHW) and so does ``detect``'s postprocessing (each anchor
    takes its best class, 0.2 floor, NMS at IoU 0.45); frames are batched.
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

    def _raw(self, frames: np.ndarray) -> Iterator[np.ndarray]:
        """The network's output per frame: (4 + C, anchors), boxes as centre and size in
        the 320-pixel input."""
        for i in range(0, len(frames), _BATCH):
            (raw,) = self._session.run(None, {self._input: self.preprocess(frames[i:i + _BATCH])})
            yield from raw

    def scores(self, frames: np.ndarray) -> np.ndarray:
        """(N, C): the highest confidence of each class over all anchors of each frame."""
        return np.stack([raw[4:].max(axis=-1) for raw in self._raw(frames)]).astype(np.float32)

    def detect(self, frames: np.ndarray) -> list[list[Detection]]:
        """Each frame's detections, as ``nudenet.NudeDetector.detect`` finds them."""
        h, w = frames.shape[1:3]
        return [self._detections(raw, w, h) for raw in self._raw(frames)]

    def _detections(self, raw: np.ndarray, w: int, h: int) -> list[Detection]:
        import cv2

        classes = raw[4:]  # (C, A)
        best = classes.max(axis=0)
        keep = np.flatnonzero(best >= _FLOOR)
        if keep.size == 0:
            return []
        scale = max(w, h) / _INPUT  # the input is the frame padded to a square
        cx, cy, bw, bh = raw[:4, keep] * scale
        x0 = np.clip(cx - bw / 2, 0, w)
        y0 = np.clip(cy - bh / 2, 0, h)
        x1 = np.minimum(x0 + bw, w)
        y1 = np.minimum(y0 + bh, h)
        boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1).tolist()
        chosen = cv2.dnn.NMSBoxes(boxes, best[keep].tolist(), _FLOOR, _NMS_IOU)
        label = classes[:, keep].argmax(axis=0)
        return [Detection(self.labels[label[k]], float(best[keep[k]]),
                          (float(x0[k]), float(y0[k]), float(x1[k]), float(y1[k])))
                for k in np.asarray(chosen, np.int64).reshape(-1)]


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
    """When detections withhold a video (see the module docstring for why each exists).

    ``block``: the score a counted detection needs when the frame also shows another body
    class scoring ``context`` or more; ``lone_block``: the score it needs alone. ``review``:
    an exposed class scoring this much marks the result for human review. ``agree``: sampled
    frames that must each hold a counted detection. ``min_region``: a box's shorter side, as a
    share of the frame's shorter side. ``trusted_side``: frames whose shorter side is smaller
    are low resolution for the detector; there a box covering ``fill`` or more of both the
    frame's width and height does not count.
    """

    block: float = 0.45
    review: float = 0.25
    lone_block: float = 0.8
    context: float = 0.4
    agree: int = 2
    min_region: float = 0.1
    trusted_side: int = 160
    fill: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 < self.review <= self.block <= self.lone_block <= 1.0:
            raise InvalidParameter("thresholds", (self.review, self.block, self.lone_block),
                                   "0 < review <= block <= lone_block <= 1")
        if not 0.0 < self.context <= 1.0:
            raise InvalidParameter("context", self.context, "more than 0, at most 1")
        if self.agree < 1:
            raise InvalidParameter("agree", self.agree, "1 or more")
        if not 0.0 <= self.min_region < 1.0:
            raise InvalidParameter("min_region", self.min_region, "0 to less than 1")
        if self.trusted_side < 1:
            raise InvalidParameter("trusted_side", self.trusted_side, "1 or more")
        if not 0.0 < self.fill <= 1.0:
            raise InvalidParameter("fill", self.fill, "more than 0, at most 1")


@dataclass(frozen=True)
class ReviewResult:
    allowed: bool
    category: str | None  # "sexual" when refused, else None
    stage: Stage
    frames_checked: tuple[int, ...]
    flagged_frames: tuple[int, ...]  # frames holding a counted detection (see FrameThresholds)
    review: bool  # some exposed class scored ``review`` or more (withheld or not)
    scores: dict[str, float] = field(default_factory=dict)  # label -> best detection, 0 if none
    reason: str = ""
    low_resolution: bool = False  # the frames are below ``trusted_side``: the fill rule applied


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


def _detect(detector: Detector | ClassScorer, frames: np.ndarray) -> list[Sequence[Detection]]:
    """Detections per frame; a ``ClassScorer``'s scores become unlocated detections."""
    if hasattr(detector, "detect"):
        found = list(detector.detect(frames))  # type: ignore[union-attr]
    else:
        scores = np.asarray(detector.scores(frames), np.float32)  # type: ignore[union-attr]
        if scores.shape != (len(frames), len(detector.labels)):
            raise ValueError(f"detector returned {scores.shape}, "
                             f"expected {(len(frames), len(detector.labels))}")
        found = [[Detection(name, float(s)) for name, s in zip(detector.labels, row) if s > 0]
                 for row in scores]
    if len(found) != len(frames):
        raise ValueError(f"detector returned {len(found)} frames' detections, expected {len(frames)}")
    return found


def _counts(d: Detection, frame: Sequence[Detection], h: int, w: int,
            thresholds: FrameThresholds, low_res: bool) -> bool:
    """Whether ``d``, one of ``frame``'s detections, is evidence enough to count."""
    if d.label not in EXPOSED_LABELS:
        return False
    body = any(o.label not in EXPOSED_LABELS and o.score >= thresholds.context for o in frame)
    if d.score < (thresholds.block if body else thresholds.lone_block):
        return False
    if d.box is None:
        return True  # nothing to judge its size by: the score decides
    bw, bh = d.box[2] - d.box[0], d.box[3] - d.box[1]
    if min(bw, bh) < thresholds.min_region * min(h, w):
        return False  # a speck cannot show anatomy
    return not (low_res and bw >= thresholds.fill * w and bh >= thresholds.fill * h)


def review_frames(
    frames: np.ndarray,
    *,
    sample: int = 16,
    stage: Stage = "output",
    thresholds: FrameThresholds = FrameThresholds(),
    detector: Detector | ClassScorer | None = None,
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
    found = _detect(det, frames[idx])
    h, w = frames.shape[1:3]
    low_res = min(h, w) < thresholds.trusted_side
    counted = [[d for d in ds if _counts(d, ds, h, w, thresholds, low_res)] for ds in found]
    flagged = tuple(int(i) for i, c in zip(idx, counted) if c)
    withheld = len(flagged) >= min(thresholds.agree, len(idx))
    per_label = {name: 0.0 for name in det.labels}
    for d in (d for ds in found for d in ds):
        per_label[d.label] = max(per_label.get(d.label, 0.0), d.score)
    exposed = max((v for k, v in per_label.items() if k in EXPOSED_LABELS), default=0.0)
    review = exposed >= thresholds.review
    if withheld:
        top = max((d for c in counted for d in c), key=lambda d: d.score)
        reason = (f"{top.label} {top.score:.2f} in {len(flagged)} of {len(idx)} frames "
                  f"{list(flagged)}" + (" (low resolution)" if low_res else ""))
    elif review:
        reason = (f"exposed-body score {exposed:.2f} >= {thresholds.review}, "
                  f"counted in {len(flagged)} of {len(idx)} frames (withholding needs "
                  f"{min(thresholds.agree, len(idx))})")
    else:
        reason = ""
    return ReviewResult(
        allowed=not withheld,
        category="sexual" if withheld else None,
        stage=stage,
        frames_checked=tuple(int(i) for i in idx),
        flagged_frames=flagged,
        review=review,
        scores=per_label,
        reason=reason,
        low_resolution=low_res,
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
    sample: int = 16,
    stage: Stage = "output",
    thresholds: FrameThresholds = FrameThresholds(),
    detector: Detector | ClassScorer | None = None,
) -> ReviewResult:
    """``review_frames``, raising ``Refused("sexual", ..., stage=stage)`` when refused."""
    result = review_frames(frames, sample=sample, stage=stage, thresholds=thresholds,
                           detector=detector)
    if not result.allowed:
        raise Refused(result.category or "sexual", _MESSAGES[stage], stage=stage)
    return result
