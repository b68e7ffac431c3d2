"""Random scenes and captions: coverage of WORLD.md, variety, and parse round trips."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cinepatch.errors import InvalidParameter
from cinepatch.world import Background, Scene, SceneObject, captions, dense_caption, parse_prompt, random_scene
from cinepatch.world.scene import BACKGROUNDS, MOTIONS, OBJECT_COLOURS, SHAPES


def test_scene_json_round_trip_and_validation():
    rng = np.random.default_rng(0)
    for _ in range(50):
        scene = random_scene(rng)
        assert Scene.from_dict(scene.to_dict()) == scene
    with pytest.raises(InvalidParameter):  # a colour names one object unless the shape is shared
        Scene(objects=(SceneObject("red", "circle"), SceneObject("red", "square")))
    Scene(objects=(SceneObject("red", "circle"), SceneObject("red", "circle", size="large")))
    with pytest.raises(InvalidParameter):
        Scene(objects=(SceneObject("teal", "circle"),))
    with pytest.raises(InvalidParameter):
        SceneObject("red", "circle", motion="still", exit="leaves")
    with pytest.raises(InvalidParameter):
        Scene(objects=(SceneObject("red", "circle", motion="right", behind_pillar=True),))  # no pillar
    with pytest.raises(InvalidParameter):
        Scene(objects=tuple(SceneObject(c, "circle") for c in ("red", "blue", "green", "pink")))


def test_random_scenes_cover_the_world():
    rng = np.random.default_rng(1)
    scenes = [random_scene(rng) for _ in range(400)]
    objects = [o for s in scenes for o in s.objects]
    assert {o.colour for o in objects} == set(OBJECT_COLOURS)
    assert {o.shape for o in objects} == set(SHAPES)
    assert {o.motion for o in objects} == set(MOTIONS)
    assert {o.speed for o in objects} == {"slow", "normal", "fast"}
    assert {o.exit for o in objects} == {"none", "enters", "leaves"}
    assert any(o.behind_pillar for o in objects) and any(o.start for o in objects)
    assert {s.background.colour for s in scenes} == set(BACKGROUNDS)
    assert {s.background.texture for s in scenes} == {"none", "striped", "checkered"}
    assert {s.pan for s in scenes} == {"none", "left", "right"}
    assert {len(s.objects) for s in scenes} == {1, 2, 3}
    assert any(len({o.colour for o in s.objects}) < len(s.objects) for s in scenes)  # twins


def _terse_view(scene: Scene) -> list[tuple]:
    return [(o.colour, o.shape, o.motion) for o in scene.objects]


def _medium_view(scene: Scene) -> dict:
    d = scene.to_dict()
    for o in d["objects"]:
        o["start"] = None
    return d


def test_captions_parse_back_to_the_scene_at_every_level():
    rng = np.random.default_rng(2)
    wordings = set()
    for _ in range(300):
        scene = random_scene(rng)
        levels = captions(scene, rng)
        assert set(levels) == {"terse", "medium", "dense"}
        wordings.add(levels["dense"])
        assert _terse_view(parse_prompt(levels["terse"])) == _terse_view(scene), levels["terse"]
        assert _medium_view(parse_prompt(levels["medium"])) == _medium_view(scene), levels["medium"]
        assert parse_prompt(levels["dense"]) == scene, levels["dense"]
        assert parse_prompt(dense_caption(scene)) == scene, dense_caption(scene)
    assert len(wordings) == 300


def test_wording_varies_and_dense_caption_is_fixed():
    scene = Scene(
        objects=(SceneObject("red", "circle", "small", "right", "fast", start="left"),),
        background=Background("navy", "striped"),
    )
    rng = np.random.default_rng(3)
    dense = {captions(scene, rng)["dense"] for _ in range(30)}
    terse = {captions(scene, rng)["terse"] for _ in range(30)}
    assert len(dense) > 10 and len(terse) > 3
    assert dense_caption(scene) == dense_caption(dataclasses.replace(scene))
    text = dense_caption(scene)
    for word in ("small", "red", "circle", "right", "quickly", "left", "navy", "striped", "camera"):
        assert word in text
