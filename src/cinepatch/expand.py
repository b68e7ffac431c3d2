"""Prompt expansion: rewrite a short or loosely worded prompt into the dense caption style the
model was trained on, as Sora and DALL·E 3 do before encoding.

Two expanders share one signature, ``expand(prompt) -> Expansion``:

- :class:`WorldExpander` (default): offline and deterministic. It parses the prompt with the
  world's parser and writes the scene back as the captioner's dense caption. A prompt outside
  the world is kept as it is, with a warning naming what the default model knows.
- :class:`ChatExpander`: any OpenAI-compatible ``/chat/completions`` endpoint (URL, key and
  model from the config), for real-world prompts and bigger models.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from cinepatch.errors import CinepatchError, InvalidParameter, UnknownPrompt

__all__ = ["Expansion", "Expander", "WorldExpander", "ChatExpander", "NoExpander", "chat_completion"]


@dataclass(frozen=True)
class Expansion:
    prompt: str  # what the user wrote
    expanded: str  # what the model encodes
    warnings: tuple[str, ...] = ()


class Expander(Protocol):
    def expand(self, prompt: str) -> Expansion: ...


class NoExpander:
    """``--no-expand``: the prompt is encoded as written."""

    def expand(self, prompt: str) -> Expansion:
        return Expansion(prompt=prompt, expanded=prompt)


class WorldExpander:
    def expand(self, prompt: str) -> Expansion:
        from cinepatch.world import dense_caption, parse_prompt, unknown_words

        try:
            scene = parse_prompt(prompt)
        except UnknownPrompt as exc:
            return Expansion(
                prompt=prompt,
                expanded=prompt,
                warnings=(f"the default model only knows its procedural world; {exc}",),
            )
        except InvalidParameter as exc:  # words the world knows, in a scene it cannot hold
            return Expansion(
                prompt=prompt, expanded=prompt, warnings=(f"the prompt is kept as written: {exc}",)
            )
        warnings: tuple[str, ...] = ()
        ignored = unknown_words(prompt)
        if ignored:
            warnings = (
                "the default model does not know these words and will ignore them: "
                + ", ".join(ignored),
            )
        return Expansion(prompt=prompt, expanded=dense_caption(scene), warnings=warnings)


SYSTEM_PROMPT = (
    "You rewrite prompts for a text-to-video model. Reply with one paragraph that describes the "
    "video densely and literally: every subject with its colour, shape, size and position; how "
    "each moves and how fast; the background and its texture; the camera. Do not add subjects "
    "the user did not ask for. Reply with the rewritten prompt only."
)


@dataclass(frozen=True)
class ChatExpander:
    """Expansion by an OpenAI-compatible chat-completions endpoint, e.g. ``http://host/v1``."""

    base_url: str
    model: str
    api_key: str = ""
    timeout: float = 30.0

    def expand(self, prompt: str) -> Expansion:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
        try:
            expanded = chat_completion(
                self.base_url, model=self.model, api_key=self.api_key, messages=messages, timeout=self.timeout
            ).strip()
        except CinepatchError as exc:
            raise CinepatchError(f"prompt expansion at {self.base_url} failed: {exc}") from exc
        if not expanded:
            raise CinepatchError(f"prompt expansion at {self.base_url} returned an empty prompt")
        return Expansion(prompt=prompt, expanded=expanded)


def chat_completion(base_url: str, *, model: str, api_key: str, messages: list[dict], timeout: float) -> str:
    """The reply text of one ``{base_url}/chat/completions`` call (temperature 0).

    Shared by every client of the endpoint (expansion, planning); any failure to reach it or
    to read its reply is a :class:`CinepatchError`.
    """
    body = json.dumps({"model": model, "temperature": 0, "messages": messages}).encode()
    request = urllib.request.Request(
        base_url.rstrip("/") + "/chat/completions",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.load(response)
        content = reply["choices"][0]["message"]["content"]
    except (urllib.error.URLError, TimeoutError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise CinepatchError(str(exc)) from exc
    if not isinstance(content, str):
        raise CinepatchError(f"the reply's content is {type(content).__name__}, not text")
    return content
