"""Each edit's parameters: one frozen dataclass, checked on construction, stored as a mapping."""

from __future__ import annotations

import dataclasses
import math

import pytest

from cinepatch.editing.params import BlendParams, ExtendParams, LoopParams, RecutParams, RemixParams, parse_params
from cinepatch.errors import InvalidParameter


def test_parameters_round_trip_through_their_stored_mapping():
    for params in (ExtendParams(seconds=2.0, direction="backward"), RemixParams(strength=0.4),
                   RecutParams(ranges=((0.0, 1.0), (2.0, 2.5)), at=0.5), LoopParams(bridge=0.75),
                   BlendParams(mode="mix", with_="a storm")):
        stored = params.to_dict()
        edit = {ExtendParams: "extend", RemixParams: "remix", RecutParams: "recut", LoopParams: "loop",
                BlendParams: "blend"}[type(params)]
        assert parse_params(edit, stored) == params
        with pytest.raises(dataclasses.FrozenInstanceError):
            params.__setattr__("at", 1.0)
    assert BlendParams(mode="mix", with_="rain").to_dict()["with"] == "rain"  # stored under its API name


@pytest.mark.parametrize("edit, mapping, name", [
    ("extend", {"direction": "sideways"}, "direction"),
    ("extend", {"seconds": math.inf}, "seconds"),
    ("remix", {"strength": 0}, "strength"),
    ("recut", {"ranges": [[0, math.inf]]}, "ranges"),
    ("recut", {"ranges": [[1, 0.5]]}, "ranges"),
    ("recut", {"ranges": []}, "ranges"),
    ("recut", {"ranges": [[0, 1]], "at": -1}, "at"),
    ("loop", {"bridge": 11}, "bridge"),
    ("blend", {"mode": "mix"}, "with"),
    ("blend", {"mode": "join", "with": "a \ud800"}, "with"),
    ("loop", {"bridge": 1, "colour": "red"}, "params"),
])
def test_bad_parameters_name_themselves(edit, mapping, name):
    with pytest.raises(InvalidParameter) as info:
        parse_params(edit, mapping)
    assert info.value.name == name


def test_unset_values_take_the_defaults():
    assert parse_params("loop", {"bridge": None}) == LoopParams()
    assert parse_params("extend", {}) == ExtendParams(seconds=None, direction="forward")
    assert parse_params("storyboard", {"cards": []}) is None  # its cards need their sources to check
