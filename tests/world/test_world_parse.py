"""The prompt parser: synonyms, word orders, counts, scene words, and out-of-world prompts."""

from __future__ import annotations

import pytest

from cinepatch.errors import UnknownPrompt
from cinepatch.world import names_background, parse_prompt, parse_prompt_report, unknown_words


def test_synonyms_from_the_contract():
    scene = parse_prompt("a crimson ball drifts rightwards on a dark blue backdrop")
    (obj,) = scene.objects
    assert (obj.colour, obj.shape, obj.motion) == ("red", "circle", "right")
    assert scene.background.colour == "navy"


@pytest.mark.parametrize(
    "text",
    [
        "a small red circle moves right on a navy background",
        "On a navy background, a small red circle moves right.",
        "the background is navy; a little scarlet disc slides to the right",
        "a tiny red dot travels from left to right against a dark blue backdrop",
    ],
)
def test_word_orders_give_one_scene(text):
    scene = parse_prompt(text)
    assert scene.background.colour == "navy"
    (obj,) = scene.objects
    assert (obj.colour, obj.shape, obj.size, obj.motion) == ("red", "circle", "small", "right")


def test_plural_counts_and_several_objects():
    scene = parse_prompt("two red circles moving left and a large green box bouncing")
    assert [(o.colour, o.shape, o.motion) for o in scene.objects] == [
        ("red", "circle", "left"), ("red", "circle", "left"), ("green", "square", "bounce")
    ]  # fmt: skip
    assert scene.objects[2].size == "large"
    assert len(parse_prompt("three white triangles rise").objects) == 3
    assert len(parse_prompt("yellow squares sink").objects) == 2  # a bare plural is two


@pytest.mark.parametrize("word,speed", [("slowly", "slow"), ("quickly", "fast"), ("rapidly", "fast"), ("gently", "slow")])
def test_speed_words(word, speed):
    assert parse_prompt(f"a blue square {word} moves up").objects[0].speed == speed
    assert parse_prompt(f"a blue square moves up {word}").objects[0].speed == speed


def test_pillar_camera_texture_and_exits():
    scene = parse_prompt(
        "a white triangle passes behind the pillar moving left while the camera pans right; checkered sky backdrop"
    )
    assert scene.pillar is not None and scene.pillar.place == "center"
    assert scene.objects[0].behind_pillar and scene.objects[0].motion == "left"
    assert scene.pan == "right"
    assert (scene.background.colour, scene.background.texture) == ("sky", "checkered")
    scene = parse_prompt("a pillar on the left, a pink box slowly rises and leaves the frame, striped brown background")
    assert scene.pillar.place == "left" and scene.background.texture == "striped"
    assert (scene.objects[0].motion, scene.objects[0].speed, scene.objects[0].exit) == ("up", "slow", "leaves")
    assert parse_prompt("a big orange wedge enters from the left moving right").objects[0].exit == "enters"


def test_other_motions_and_start_positions():
    motions = [o.motion for o in parse_prompt("a red ball stays still, a blue box grows and a green wedge shrinks").objects]
    assert motions == ["still", "grow", "shrink"]
    obj = parse_prompt("a yellow square starting at the top left moves right").objects[0]
    assert (obj.start, obj.motion) == ("top left", "right")


def test_a_prompt_naming_nothing_in_the_world_raises_and_lists_what_it_knows():
    with pytest.raises(UnknownPrompt) as info:
        parse_prompt("a dragon flying over a medieval castle")
    message = str(info.value)
    assert "circle" in message and "navy" in message and "pillar" in message


def test_words_not_understood_are_reported():
    result = parse_prompt_report("a red ball moves right past a dragon in the fog")
    assert result.scene.objects[0].colour == "red"
    assert set(result.unknown_words) == {"past", "dragon", "fog"}
    assert not result.fully_understood
    assert unknown_words("a red ball moves right") == ()
    assert "castle" in unknown_words("a castle")


@pytest.mark.parametrize(("text", "named"), [
    ("a red circle moves right", False),
    ("a blue ball on a gray background", True),  # the object's colour stays the object's
    ("a red circle on a checkered backdrop", True),  # a texture alone names one
    ("against a plain dark blue backdrop, a small red square", True),
])
def test_names_background(text: str, named: bool) -> None:
    assert names_background(text) is named
