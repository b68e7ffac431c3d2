"""The learned part of prompt moderation: a small MLP head on MiniLM embeddings averaged with
a character n-gram model, plus the labelled exemplars for a nearest-neighbour second opinion.

Build (writes ``data/head.npz``, ~3 MB; deterministic; 3–15 minutes, more with training alongside)::

    python -m cinepatch.safety.head

The MLP is a softmax over ``("none",) + CATEGORIES`` after one hidden ReLU layer of 128
units, trained with class-balanced weights, L2 and full-batch Adam on ``data/train.jsonl``
(the first 522 prompts), ``data/train_extra.jsonl`` (1,339 more by two other authors) and
``data/train_extra2.jsonl`` (836 more by a third, 600 of them benign, most near a boundary).
A linear head on the same data refused "a fictional president gives a speech" along with
"the president …": one hyperplane cannot carve such an exception. The class probabilities
moderation reads are the mean of the MLP's and those of ``chars.CharModel`` (TF-IDF character
n-grams, logistic regression), which catches spellings MiniLM's word pieces blur.

Its two thresholds are chosen by 5-fold cross-validation on the training set alone (never on
an evaluation set), scoring each held-out prompt as moderation does: by its most harmful
reading (whole, de-obfuscated, each sentence), and counting the refusals of the review band's
nearest-exemplar rule: the pair that refuses the most held-out disallowed prompts while
refusing no more than ``MAX_BENIGN`` (3 %, the target) of the held-out benign ones. (Scoring
each prompt by its whole text alone at a 1 % rate, as an earlier build did, refused 5–10 % of
benign prompts on blind sets: moderation takes the most harmful of several readings.)
The file records the SHA-256 of the training files so a test can tell a stale head from a
fresh one.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from cinepatch.safety.chars import CharModel
from cinepatch.safety.rules import CATEGORIES

__all__ = ["Head", "get_head", "train_head", "load_training_set", "CLASSES"]

CLASSES: tuple[str, ...] = ("none",) + CATEGORIES
_DATA = "data"
TRAIN_FILES: tuple[str, ...] = ("train.jsonl", "train_extra.jsonl", "train_extra2.jsonl")
HIDDEN = 128
MAX_BENIGN = 0.03  # held-out benign prompts refused, in cross-validation: the target's 3 %


def _data_path(name: str) -> Path:
    return Path(str(resources.files("cinepatch.safety").joinpath(_DATA, name)))


def load_training_set(paths: list[Path] | None = None) -> tuple[list[str], np.ndarray, str]:
    """Texts, integer labels (index into CLASSES) and the SHA-256 of the files, in order."""
    paths = paths or [_data_path(name) for name in TRAIN_FILES]
    digest = hashlib.sha256()
    texts: list[str] = []
    labels: list[int] = []
    for path in paths:
        raw = path.read_bytes()
        digest.update(raw)
        rows = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        texts += [r["text"] for r in rows]
        labels += [CLASSES.index(r["label"]) for r in rows]
    return texts, np.array(labels, np.int64), digest.hexdigest()


Params = dict[str, np.ndarray]  # w1 (384, H), b1 (H,), w2 (H, K), b2 (K,)


def _forward(params: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hidden pre-activations (N, H) and logits (N, K)."""
    h = x @ params["w1"] + params["b1"]
    return h, np.maximum(h, 0.0) @ params["w2"] + params["b2"]


def _fit(x: np.ndarray, y: np.ndarray, *, hidden: int = HIDDEN, l2: float = 1e-4, steps: int = 600,
         lr: float = 3e-3, seed: int = 0) -> Params:
    """Class-balanced softmax MLP (one ReLU layer) by full-batch Adam; deterministic per seed."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    k = len(CLASSES)
    counts = np.bincount(y, minlength=k).astype(np.float64)
    sample_w = (n / (k * np.maximum(counts, 1)))[y]  # (N,)
    onehot = np.eye(k)[y]  # (N, K)
    params: Params = {
        "w1": rng.normal(0.0, 1.0 / np.sqrt(d), (d, hidden)), "b1": np.zeros(hidden),
        "w2": rng.normal(0.0, 0.1 / np.sqrt(hidden), (hidden, k)), "b2": np.zeros(k),
    }  # fmt: skip
    m = {name: np.zeros_like(v) for name, v in params.items()}
    v = {name: np.zeros_like(p) for name, p in params.items()}
    for it in range(1, steps + 1):
        h, logits = _forward(params, x)
        a = np.maximum(h, 0.0)
        g = (_softmax(logits) - onehot) * sample_w[:, None] / n  # (N, K)
        gh = (g @ params["w2"].T) * (h > 0)  # (N, H)
        grads = {"w2": a.T @ g + l2 * params["w2"], "b2": g.sum(0),
                 "w1": x.T @ gh + l2 * params["w1"], "b1": gh.sum(0)}  # fmt: skip
        for name, grad in grads.items():
            m[name] = 0.9 * m[name] + 0.1 * grad
            v[name] = 0.999 * v[name] + 0.001 * grad**2
            step = (m[name] / (1 - 0.9**it)) / (np.sqrt(v[name] / (1 - 0.999**it)) + 1e-8)
            params[name] = params[name] - lr * step
    return {name: p.astype(np.float32) for name, p in params.items()}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


@dataclass(frozen=True)
class Head:
    params: Params  # the MLP: w1 (384, H), b1, w2 (H, K), b2
    chars: CharModel  # the character n-gram view, averaged with the MLP
    block: float  # refuse at or above this category probability
    review: float  # second opinion between review and block
    exemplars: np.ndarray  # (N, 384) training embeddings
    exemplar_labels: np.ndarray  # (N,)
    train_sha256: str

    def probs(self, emb: np.ndarray, texts: list[str]) -> np.ndarray:
        """(B, 384) embeddings of (B,) texts -> (B, K) class probabilities, column 0 is "none":
        the mean of the MLP's and the character model's."""
        return 0.5 * (_softmax(_forward(self.params, emb)[1]) + self.chars.probs(texts))

    def neighbours(self, emb: np.ndarray, k: int = 3) -> np.ndarray:
        """(B, 384) -> (B, K): mean cosine similarity to the k nearest exemplars of each class."""
        sims = emb @ self.exemplars.T  # (B, N)
        out = np.zeros((emb.shape[0], len(CLASSES)), np.float32)
        for c in range(len(CLASSES)):
            s = np.sort(sims[:, self.exemplar_labels == c], axis=1)[:, -k:]
            out[:, c] = s.mean(1)
        return out

    @classmethod
    def load(cls, path: Path | None = None) -> Head:
        with np.load(path or _data_path("head.npz")) as z:
            if tuple(str(c) for c in z["classes"]) != CLASSES:
                raise ValueError("head.npz was trained for other categories; rebuild it")
            if "w1" not in z or "char_coef" not in z:
                raise ValueError("head.npz is an older head (linear, or no character model); rebuild it")
            chars = CharModel(ngrams=z["char_ngrams"], idf=z["char_idf"], coef=z["char_coef"],
                              intercept=z["char_intercept"])
            return cls(params={name: z[name] for name in ("w1", "b1", "w2", "b2")}, chars=chars,
                       block=float(z["block"]),
                       review=float(z["review"]), exemplars=z["exemplars"].astype(np.float32),
                       exemplar_labels=z["exemplar_labels"], train_sha256=str(z["train_sha256"]))


def _threshold(benign_scores: np.ndarray, max_rate: float) -> float:
    """Lowest threshold refusing at most ``max_rate`` of the benign scores."""
    s = np.sort(benign_scores)[::-1]
    allowed = int(np.floor(max_rate * len(s)))
    return float(s[allowed]) + 1e-4 if allowed < len(s) else 0.0


def train_head(out: Path | None = None, *, seed: int = 0) -> Head:
    from cinepatch.safety.embed import get_minilm
    from cinepatch.safety.moderation import _readings

    texts, y, sha = load_training_set()
    # Every reading moderation takes of a prompt (whole, de-obfuscated, each sentence); the
    # head is fitted on the whole prompts, the thresholds on the readings' maximum, as served.
    readings = [_readings(t) for t in texts]
    owner = np.repeat(np.arange(len(texts)), [len(r) for r in readings])
    flat = [r for rs in readings for r in rs]
    x_all = get_minilm().encode(flat).astype(np.float64)  # (R, 384)
    first = np.r_[0, np.cumsum([len(r) for r in readings])[:-1]]
    x = x_all[first]  # (N, 384): reading 0 is the prompt as written
    # 5-fold cross-validation for the thresholds: for each held-out prompt, the category
    # probability (1 - p(none)) of its most harmful reading from a head that did not see it,
    # and whether the review band's nearest-exemplar rule (over the other folds) would refuse.
    rng = np.random.default_rng(seed)
    folds = rng.permutation(len(y)) % 5
    held = np.zeros(len(y))
    neighbour_refuses = np.zeros(len(y), bool)
    for f in range(5):
        params = _fit(x[folds != f], y[folds != f], seed=seed)
        chars = CharModel.fit([t for t, k in zip(texts, folds) if k != f], y[folds != f],
                              classes=len(CLASSES))
        fold_head = Head(params, chars, 1.0, 1.0, x[folds != f].astype(np.float32), y[folds != f], "")
        rows = np.flatnonzero(folds[owner] == f)  # readings of held-out prompts
        probs = fold_head.probs(x_all[rows], [flat[r] for r in rows])  # (R_f, K)
        for i in np.unique(owner[rows]):
            mine = rows[owner[rows] == i]
            pick = int(np.argmin(probs[np.searchsorted(rows, mine), 0]))
            p = probs[np.searchsorted(rows, mine[pick])]
            held[i] = 1.0 - p[0]
            near = fold_head.neighbours(x_all[mine[pick]][None].astype(np.float32))[0]
            neighbour_refuses[i] = near[1 + int(p[1:].argmax())] > near[0]
    review, block = _thresholds(held, neighbour_refuses, y != 0, max_benign=MAX_BENIGN)
    refused = (held >= block) | ((held >= review) & neighbour_refuses)
    print(f"cv: block={block:.3f} review={review:.3f} recall={refused[y != 0].mean():.3f} "
          f"benign refused={refused[y == 0].mean():.3f} benign in band={(held[y == 0] >= review).mean():.3f}")
    params = _fit(x, y, seed=seed)
    chars = CharModel.fit(texts, y, classes=len(CLASSES))
    out = out or _data_path("head.npz")
    np.savez_compressed(out, **params, char_ngrams=chars.ngrams, char_idf=chars.idf,
                        char_coef=chars.coef, char_intercept=chars.intercept,
                        block=np.float32(block), review=np.float32(review),
                        exemplars=x.astype(np.float16), exemplar_labels=y,
                        classes=np.array(CLASSES), train_sha256=np.array(sha))
    return Head.load(out)


def _thresholds(held: np.ndarray, neighbour_refuses: np.ndarray, bad: np.ndarray, *,
                max_benign: float) -> tuple[float, float]:
    """(review, block) that refuse the most held-out disallowed prompts while refusing at most
    ``max_benign`` of the benign ones — by the head at or above ``block``, or by the band's
    nearest-exemplar rule between ``review`` and ``block``. Searched over the held-out scores'
    percentiles; block ≥ 0.5, review ≥ 0.2."""
    grid = np.unique(np.r_[np.quantile(held, np.linspace(0, 1, 201)), 1.0])
    best = (-1.0, 1.0, 1.0)
    for block in grid[grid >= 0.5]:
        for review in grid[(grid >= 0.2) & (grid <= block)]:
            refused = (held >= block) | ((held >= review) & neighbour_refuses)
            if refused[~bad].mean() <= max_benign and refused[bad].mean() > best[0]:
                best = (float(refused[bad].mean()), float(review), float(block))
    return best[1], best[2]


_lock = threading.Lock()
_head: Head | None = None


def get_head() -> Head:
    """The packaged head, loaded on first use (thread-safe)."""
    global _head
    if _head is None:
        with _lock:
            if _head is None:
                _head = Head.load()
    return _head


if __name__ == "__main__":
    from cinepatch.safety.embed import one_blas_thread

    with one_blas_thread():
        h = train_head()
    print(f"wrote head: {h.params['w1'].shape[1]} hidden units, block={h.block:.3f}, review={h.review:.3f}")
