"""Prompt moderation: lexicon rules, a learned head with a review band, an optional endpoint.

Order of decisions for one prompt::

    rules (normalised lexicon)  ── hit ──────────────────────────────► refuse
      │ no hit
    MiniLM → MLP head, averaged with character n-grams:   s = 1 − p(none)
      │ s ≥ block ───────────────────────────────────────────────────► refuse
      │ review ≤ s < block: nearest training exemplars decide:
      │     the top class's 3 nearest are closer than the benign 3 ──► refuse
      │     otherwise ─────────────────────────────────► allow, review=True
      │ s < review ──────────────────────────────────────────────────► allow
    external endpoint (only if configured): flagged ────────────────► refuse

Everything runs offline from package data; torch is never imported. The endpoint speaks the
OpenAI moderation API (``POST {url}/v1/moderations``, bearer key); if it fails the local
decision stands unless ``SafetyConfig.fail_closed`` is set.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from cinepatch.errors import InvalidParameter, Refused
from cinepatch.safety.rules import CATEGORIES, match_rules, normalize

__all__ = [
    "CATEGORIES",
    "SafetyConfig",
    "ModerationResult",
    "moderate_prompt",
    "check_prompt",
    "USER_MESSAGES",
]

MAX_PROMPT_CHARS = 10_000
_MAX_SENTENCES = 8  # sentences the head reads one by one (beyond that, only the whole prompt)

USER_MESSAGES: dict[str, str] = {
    "sexual/minors": "This prompt was refused: cinepatch never depicts minors in a sexual way.",
    "sexual": "This prompt was refused: cinepatch does not make sexual or nude content.",
    "violence/graphic": "This prompt was refused: cinepatch does not make graphic violence, "
                        "gore or depictions of real-world atrocities. Action and conflict without "
                        "gore are fine.",
    "hate": "This prompt was refused: cinepatch does not make content that demeans or "
            "attacks people for who they are, or that promotes hate groups.",
    "self-harm": "This prompt was refused: cinepatch does not depict or encourage suicide or "
                 "self-harm. If you are struggling, please reach out to someone you trust or a "
                 "local crisis line.",
    "public-figure": "This prompt was refused: cinepatch does not depict real, identifiable "
                     "people or make deepfakes. Try a fictional character instead.",
    "weapons-instructions": "This prompt was refused: cinepatch does not show how to make or "
                            "modify weapons or explosives.",
    "unavailable": "Content moderation is unavailable right now, so nothing was generated. "
                   "Please try again later.",
}
_FALLBACK_MESSAGE = "This prompt was refused by content moderation."

# OpenAI moderation categories -> ours; anything else is reported under its own name.
_EXTERNAL_MAP: dict[str, str] = {
    "sexual/minors": "sexual/minors",
    "sexual": "sexual",
    "violence/graphic": "violence/graphic",
    "violence": "violence/graphic",
    "hate": "hate",
    "hate/threatening": "hate",
    "harassment": "hate",
    "harassment/threatening": "hate",
    "self-harm": "self-harm",
    "self-harm/intent": "self-harm",
    "self-harm/instructions": "self-harm",
    "illicit/violent": "weapons-instructions",
}


@dataclass(frozen=True)
class SafetyConfig:
    """Moderation settings. ``endpoint`` is a base URL (``https://host``); the request goes
    to ``{endpoint}/v1/moderations``. Thresholds default to the ones stored with the head."""

    endpoint: str | None = None
    api_key: str | None = None
    model: str | None = None  # sent as "model" when set, e.g. "omni-moderation-latest"
    timeout_s: float = 5.0
    fail_closed: bool = False  # refuse when the configured endpoint cannot be reached
    use_classifier: bool = True  # False: rules (and endpoint) only
    block: float | None = None
    review: float | None = None

    def __post_init__(self) -> None:
        if self.endpoint is not None and not self.endpoint.startswith(("http://", "https://")):
            raise InvalidParameter("endpoint", self.endpoint, "an http:// or https:// base URL")
        if self.timeout_s <= 0:
            raise InvalidParameter("timeout_s", self.timeout_s, "more than 0")
        for name in ("block", "review"):
            v = getattr(self, name)
            if v is not None and not 0.0 < v <= 1.0:
                raise InvalidParameter(name, v, "0 < value <= 1")


@dataclass(frozen=True)
class ModerationResult:
    allowed: bool
    category: str | None  # the refusing category; None when allowed
    scores: dict[str, float] = field(default_factory=dict)  # category -> 0..1 (1.0 = rule hit)
    reason: str = ""  # what decided, for logs (not shown to users)
    review: bool = False  # allowed but uncertain: worth a human look
    source: str = ""  # "rules" | "classifier" | "neighbours" | "external" | ""

    @property
    def message(self) -> str:
        """The text to show the person who wrote the prompt."""
        if self.allowed:
            return ""
        return USER_MESSAGES.get(self.category or "", _FALLBACK_MESSAGE)


def _external(text: str, config: SafetyConfig) -> tuple[str | None, dict[str, float]]:
    """Ask the endpoint; returns (our category if flagged, scores by our categories)."""
    assert config.endpoint is not None
    body: dict[str, object] = {"input": text}
    if config.model:
        body["model"] = config.model
    headers = {"Content-Type": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    req = urllib.request.Request(config.endpoint.rstrip("/") + "/v1/moderations",
                                 data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=config.timeout_s) as resp:  # noqa: S310 - config URL
        payload = json.loads(resp.read())
    result = payload["results"][0]
    scores: dict[str, float] = {}
    for name, value in result.get("category_scores", {}).items():
        ours = _EXTERNAL_MAP.get(name, name)
        scores[ours] = max(scores.get(ours, 0.0), float(value))
    flagged = [_EXTERNAL_MAP.get(n, n) for n, on in result.get("categories", {}).items() if on]
    if not result.get("flagged", bool(flagged)):
        return None, scores
    ordered = [c for c in CATEGORIES if c in flagged] + [c for c in flagged if c not in CATEGORIES]
    return (ordered[0] if ordered else "flagged"), scores


def _readings(text: str) -> list[str]:
    """What the head reads: the prompt as written; de-obfuscated, when the rules' normaliser
    changes more than case and punctuation ("h4rdcore s e x" -> "hardcore sex"); and each
    sentence of a prompt of several, so a request buried in a long scene is not averaged away."""
    texts = [text]
    plain = " ".join(normalize(text)[0])
    if plain != " ".join(re.findall(r"\w+", text.casefold())):
        texts.append(plain)
    sentences = [s for s in re.split(r"(?<=[.!?;])\s+", text.strip()) if len(s.split()) >= 3]
    if len(sentences) > 1:
        texts.extend(sentences[:_MAX_SENTENCES])
    return texts


def _local(text: str, config: SafetyConfig) -> ModerationResult:
    hits = match_rules(text)
    scores = {c: 0.0 for c in CATEGORIES}
    for h in hits:
        scores[h.category] = 1.0
    if hits:
        return ModerationResult(False, hits[0].category, scores,
                                reason="; ".join(f"{h.category}: lexicon '{h.term}'" for h in hits),
                                source="rules")
    if not config.use_classifier or not text.strip():
        return ModerationResult(True, None, scores)

    from cinepatch.safety.embed import get_minilm, one_blas_thread
    from cinepatch.safety.head import get_head

    head = get_head()
    readings = _readings(text)
    embs = get_minilm().encode(readings)  # (R, 384)
    with one_blas_thread():
        all_probs = head.probs(embs, readings)  # (R, K), index 0 = none; the most harmful reading decides
        pick = int(all_probs[:, 0].argmin())
        emb, probs = embs[pick : pick + 1], all_probs[pick]
        s = float(1.0 - probs[0])
        top = 1 + int(probs[1:].argmax())
        category = CATEGORIES[top - 1]
        for i, c in enumerate(CATEGORIES, start=1):
            scores[c] = float(probs[i])
        block = config.block if config.block is not None else head.block
        review = config.review if config.review is not None else head.review
        if s >= block:
            return ModerationResult(False, category, scores,
                                    reason=f"classifier: {category} (1-p(none)={s:.2f} >= {block:.2f})",
                                    source="classifier")
        if s >= review:
            near = head.neighbours(emb)[0]  # (K,)
            if near[top] > near[0]:
                return ModerationResult(
                    False, category, scores, source="neighbours",
                    reason=(f"review band ({s:.2f}); nearest {category} exemplars "
                            f"{near[top]:.2f} > benign {near[0]:.2f}"))
            return ModerationResult(True, None, scores, review=True,
                                    reason=(f"review band ({s:.2f}, {category}); nearest benign "
                                            f"exemplars {near[0]:.2f} >= {near[top]:.2f}"))
    return ModerationResult(True, None, scores)


def moderate_prompt(text: str, *, config: SafetyConfig | None = None) -> ModerationResult:
    """Decide whether a prompt may be generated. Never raises for disallowed content."""
    if not isinstance(text, str):
        raise InvalidParameter("prompt", type(text).__name__, "a string")
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidParameter("prompt", f"{len(text)} characters", f"at most {MAX_PROMPT_CHARS}")
    config = config or SafetyConfig()
    local = _local(text, config)
    if config.endpoint is None:
        return local
    try:
        ext_category, ext_scores = _external(text, config)
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        if config.fail_closed and local.allowed:
            return ModerationResult(False, "unavailable", local.scores, source="external",
                                    reason=f"moderation endpoint failed ({exc}); fail_closed")
        return ModerationResult(local.allowed, local.category, local.scores,
                                reason=(local.reason + "; " if local.reason else "")
                                + f"moderation endpoint failed ({exc}); local decision kept",
                                review=local.review, source=local.source)
    scores = dict(local.scores)
    for c, v in ext_scores.items():
        scores[f"external:{c}"] = v
    if not local.allowed:
        return ModerationResult(False, local.category, scores, local.reason, local.review, local.source)
    if ext_category is not None:
        return ModerationResult(False, ext_category, scores, source="external",
                                reason=f"external endpoint flagged {ext_category}")
    return ModerationResult(True, None, scores, local.reason, local.review, local.source)


def check_prompt(text: str, *, config: SafetyConfig | None = None) -> ModerationResult:
    """``moderate_prompt``, raising ``Refused(category, message, stage="prompt")`` on refusal."""
    result = moderate_prompt(text, config=config)
    if not result.allowed:
        raise Refused(result.category or "flagged", result.message, stage="prompt")
    return result
