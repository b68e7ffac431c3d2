"""Storyboard: cards — each a prompt, an image or a video clip — placed on a timeline and
rendered as one continuous video.

A card spans from its time to the next card's (the last to the end), or for ``seconds`` when
it gives them; the gap after a short card continues that card. Each card's part is made as a
continuation of everything before it, so motion carries across card boundaries — except where
a card's prompt names another background than the card before's plan: that card is a cut, a new
shot (the world has no backgrounds that turn into others, so a continuation would drag the old
one into the new card).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from cinepatch.backends.base import Backend, GenerationSpec, Progress
from cinepatch.editing.conform import conform
from cinepatch.editing.plan import Plan, context_length, continue_video, placeholder, window_length
from cinepatch.editing.scenes import Planning, animated, carried, continued, fitted, joined, read
from cinepatch.editing.scenes import window as window_of
from cinepatch.errors import InvalidParameter
from cinepatch.planning.schema import ScenePlan
from cinepatch.io.video import Video
from cinepatch.world.parse import names_background

__all__ = ["Card", "parse_cards", "read_storyboard", "storyboard"]


@dataclass(frozen=True)
class Card:
    at: float  # seconds
    prompt: str | None = None
    source: int | None = None  # index into the request's sources (an image or a clip)
    seconds: float | None = None


def read_storyboard(path: Path) -> tuple[list[dict], list[Path]]:
    """A JSON/YAML timeline file → card dicts with ``source`` indices, and the source paths.

    File format::

        cards:
          - {at: 0, prompt: "a red circle moves right on a navy background"}
          - {at: 2, image: start.png}
          - {at: 4, video: clip.mp4, prompt: "…"}
    """
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidParameter("storyboard", str(path), f"a readable JSON or YAML file ({exc})") from exc
    cards = raw.get("cards") if isinstance(raw, dict) else raw
    if not isinstance(cards, list):
        raise InvalidParameter("storyboard", str(path), "a list of cards, or a mapping with 'cards'")
    sources: list[Path] = []
    out = []
    for card in cards:
        if not isinstance(card, dict):
            raise InvalidParameter("card", card, "a mapping with 'at' and one of prompt/image/video")
        card = dict(card)
        media = [key for key in ("image", "video") if key in card]
        if len(media) > 1:
            raise InvalidParameter("card", card, "at most one of image or video")
        if media:
            sources.append((Path(path).parent / str(card.pop(media[0]))).resolve())
            card["source"] = len(sources) - 1
        out.append(card)
    return out, sources


def parse_cards(value: object, *, duration: float, sources: int) -> list[Card]:
    """Validate cards (times inside the video, none overlapping) before any compute."""
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidParameter("cards", value, "a non-empty list of cards")
    cards = []
    for item in value:
        if not isinstance(item, Mapping):
            raise InvalidParameter("card", item, "a mapping with 'at' and a prompt, image or video")
        unknown = set(item) - {"at", "prompt", "source", "seconds"}
        if unknown:
            raise InvalidParameter(f"card.{sorted(unknown)[0]}", item, "keys at, prompt, image/video, seconds")
        at, seconds, source = item.get("at"), item.get("seconds"), item.get("source")
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not 0 <= at < duration:
            raise InvalidParameter("card.at", at, f"0 to {duration:g} seconds (before the end)")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0):
            raise InvalidParameter("card.seconds", seconds, "more than 0")
        if source is not None and source not in range(sources):
            raise InvalidParameter("card.source", source, f"0 to {sources - 1}")
        prompt = item.get("prompt")
        if source is None and not (isinstance(prompt, str) and prompt.strip()):
            raise InvalidParameter("card", dict(item), "a prompt, an image or a video")
        cards.append(Card(at=float(at), prompt=prompt, source=source, seconds=seconds))
    cards.sort(key=lambda card: card.at)
    if cards[0].at != 0:
        raise InvalidParameter("card.at", cards[0].at, "0 for the first card (the video starts with it)")
    for card, nxt in zip(cards, cards[1:]):
        end = card.at + (card.seconds or 0)
        if nxt.at == card.at or end > nxt.at + 1e-9:
            raise InvalidParameter("cards", f"cards at {card.at:g} s and {nxt.at:g} s",
                                   "cards that do not overlap in time")
    return cards


def storyboard(
    spec: GenerationSpec,
    inputs: list[Video],
    params: Mapping[str, object],
    *,
    window: int | None,
    latent_step: int,
    expand: Callable[[str], str],
    planning: Planning | None = None,
) -> Plan:
    """Each card's part made in turn, continuing everything before it; with ``planning``, one
    plan per card (its prompt's, or its image's or clip's objects) with an object the cards
    share carried from one card into the next, all joined into the output's plan, and a card
    whose planned background differs from the card before it made as a cut."""
    cards = parse_cards(params.get("cards"), duration=spec.seconds, sources=len(inputs))
    conformed = [conform(video, width=spec.width, height=spec.height, fps=spec.fps, name=f"source {i}")
                 for i, video in enumerate(inputs)]
    notes = tuple(note for _, found in conformed for note in found)
    starts = [round(card.at * spec.fps) for card in cards] + [spec.frames]
    for card, start, end in zip(cards, starts, starts[1:]):
        if end <= start:
            raise InvalidParameter("card.at", card.at, f"cards at least one frame (1/{spec.fps} s) apart and before the end")
    prompts = [expand(card.prompt) if card.prompt else spec.prompt for card in cards]
    length = window_length(window, spec.fps, latent_step)
    context = context_length(spec.fps, length, latent_step)
    scene, cuts, plan_notes = _scene(cards, starts, conformed, spec, planning)
    notes += plan_notes
    shapes = (replace(spec, frames=min(length, starts[1]), plan=window_of(scene, 0, min(length, starts[1]))),
              placeholder(replace(spec, frames=length), context, list(range(context))))

    def run(backend: Backend, progress: Progress) -> np.ndarray:
        video = np.zeros((0, spec.height, spec.width, 3), np.uint8)
        for i, card in enumerate(cards):
            n = starts[i + 1] - starts[i]
            part = replace(spec, prompt=prompts[i])
            lo, span = starts[i] / spec.frames, n / spec.frames

            def report(f: float, lo: float = lo, span: float = span) -> None:
                progress(lo + span * min(1.0, f))

            media = conformed[card.source][0] if card.source is not None else None
            if media is not None:
                # A clip plays for its `seconds` (or its length) within the card; an image is one
                # frame. The rest of the card continues from it.
                keep = len(media) if card.seconds is None else max(1, round(card.seconds * spec.fps))
                head = media[: min(n, keep)]
            elif len(video) == 0 or cuts[i]:
                first = replace(part, frames=min(n, length), plan=window_of(scene, starts[i], min(n, length)))
                head = backend.generate(first, progress=lambda f, share=first.frames / n: report(share * f))
            else:
                head = video[:0]
            rest = n - len(head)
            start = len(head) / n
            history = np.concatenate([video, head])
            # A card's own image or clip is kept as given; made frames hand over to the new ones.
            if rest:
                video = continue_video(backend, part, history, rest, window=length, scene=scene, release=media is None,
                                       progress=lambda f, start=start: report(start + (1 - start) * f)).after(history)
            else:
                video = history
        return video

    return Plan(specs=shapes, runner=run, warnings=notes, scene=scene)


def _scene(
    cards: list[Card], starts: list[int], conformed: list, spec: GenerationSpec, planning: Planning | None  # noqa: ANN001
) -> tuple[ScenePlan | None, list[bool], tuple[str, ...]]:
    """The storyboard's plan: the person's (fitted), else each card's plan, carried and joined;
    and for each card whether it is a cut (its prompt names a background the card before's plan
    does not have; a card that names none keeps the one it continues)."""
    cuts = [False] * len(cards)
    if planning is None:
        return None, cuts, ()
    if planning.user is not None:
        return fitted(planning.user, spec.frames), cuts, ()
    whole: ScenePlan | None = None
    before: ScenePlan | None = None
    notes: tuple[str, ...] = ()
    for i, card in enumerate(cards):
        n = starts[i + 1] - starts[i]
        part = planning.plan_text(card.prompt, n) if card.prompt else window_of(planning.prompt, starts[i], n)
        if card.source is not None:
            media = conformed[card.source][0]
            keep = min(n, len(media) if card.seconds is None else max(1, round(card.seconds * spec.fps)))
            read_plan, found = read(media[:keep], spec.fps)
            notes += found
            if read_plan is not None:
                part = animated(read_plan, part, 0, frames=n) if keep == 1 else continued(read_plan, n - keep)
        if part is None:
            return None, [False] * len(cards), (*notes, f"card {i} could not be planned; the storyboard follows its cards alone")
        if before is not None and card.source is None and not names_background(str(card.prompt)):
            part = replace(part, background=before.background)  # a card that names none keeps it
        cuts[i] = before is not None and part.background != before.background
        whole, before = (part if whole is None else joined(whole, carried(whole, part), 0)), part
    return whole, cuts, notes
