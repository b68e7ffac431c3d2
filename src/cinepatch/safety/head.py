"""The learned part of prompt moderation: a logistic-regression head on MiniLM embeddings,
plus the labelled exemplars it was trained on for a nearest-neighbour second opinion.

Build (writes ``data/head.npz``, ~0.3 MB; deterministic; a few seconds)::

    python -m cinepatch.safety.head

The head is a softmax over ``("none",) + CATEGORIES`` trained with class-balanced weights and
L2 on ``data/train.jsonl``. Its two thresholds are chosen by 5-fold cross-validation on the
training set alone (never on the evaluation set): ``block`` is the lowest probability at
which no more than 1% of held-out benign training prompts would be refused, ``review`` the
lowest at which no more than 8% would be. The file records the SHA-256 of the training set
so a test can tell a stale head from a fresh one.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from cinepatch.safety.rules import CATEGORIES

__all__ = ["Head", "get_head", "train_head", "load_training_set", "CLASSES"]

CLASSES: tuple[str, ...] = ("none",) + CATEGORIES
_DATA = "data"


def _data_path(name: str) -> Path:
    return Path(str(resources.files("cinepatch.safety").joinpath(_DATA, name)))


def load_training_set(path: Path | None = None) -> tuple[list[str], np.ndarray, str]:
    """Texts, integer labels (index into CLASSES) and the file's SHA-256."""
    path = path or _data_path("train.jsonl")
    raw = path.read_bytes()
    rows = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    texts = [r["text"] for r in rows]
    labels = np.array([CLASSES.index(r["label"]) for r in rows], np.int64)
    return texts, labels, hashlib.sha256(raw).hexdigest()


def _fit(x: np.ndarray, y: np.ndarray, *, l2: float = 1e-3, steps: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced multinomial logistic regression by full-batch gradient descent."""
    n, d = x.shape
    k = len(CLASSES)
    counts = np.bincount(y, minlength=k).astype(np.float64)
    sample_w = (n / (k * np.maximum(counts, 1)))[y]  # (N,)
    onehot = np.eye(k)[y]  # (N, K)
    w = np.zeros((d, k))
    b = np.zeros(k)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    lr, momentum = 2.0, 0.9
    for _ in range(steps):
        logits = x @ w + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) * sample_w[:, None] / n  # (N, K)
        gw = x.T @ g + l2 * w
        gb = g.sum(0)
        vw = momentum * vw - lr * gw
        vb = momentum * vb - lr * gb
        w += vw
        b += vb
    return w.astype(np.float32), b.astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


@dataclass(frozen=True)
class Head:
    weight: np.ndarray  # (384, K)
    bias: np.ndarray  # (K,)
    block: float  # refuse at or above this category probability
    review: float  # second opinion between review and block
    exemplars: np.ndarray  # (N, 384) training embeddings
    exemplar_labels: np.ndarray  # (N,)
    train_sha256: str

    def probs(self, emb: np.ndarray) -> np.ndarray:
        """(B, 384) -> (B, K) class probabilities, column 0 is "none"."""
        return _softmax(emb @ self.weight + self.bias)

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
            return cls(weight=z["weight"], bias=z["bias"], block=float(z["block"]),
                       review=float(z["review"]), exemplars=z["exemplars"].astype(np.float32),
                       exemplar_labels=z["exemplar_labels"], train_sha256=str(z["train_sha256"]))


def _threshold(benign_scores: np.ndarray, max_rate: float) -> float:
    """Lowest threshold refusing at most ``max_rate`` of the benign scores."""
    s = np.sort(benign_scores)[::-1]
    allowed = int(np.floor(max_rate * len(s)))
    return float(s[allowed]) + 1e-4 if allowed < len(s) else 0.0


def train_head(out: Path | None = None, *, seed: int = 0) -> Head:
    from cinepatch.safety.embed import get_minilm

    texts, y, sha = load_training_set()
    x = get_minilm().encode(texts).astype(np.float64)
    # 5-fold cross-validation for the thresholds: the category probability (1 - p(none))
    # that each benign training prompt gets from a head that did not see it.
    rng = np.random.default_rng(seed)
    folds = rng.permutation(len(y)) % 5
    held = np.zeros(len(y))
    for f in range(5):
        w, b = _fit(x[folds != f], y[folds != f])
        held[folds == f] = 1.0 - _softmax(x[folds == f] @ w + b)[:, 0]
    benign = held[y == 0]
    block = max(0.5, _threshold(benign, 0.01))
    review = min(block, max(0.2, _threshold(benign, 0.08)))
    recall = float((held[y != 0] >= block).mean())
    print(f"cv: block={block:.3f} review={review:.3f} recall@block={recall:.3f} "
          f"benign>=review={(benign >= review).mean():.3f}")
    w, b = _fit(x, y)
    out = out or _data_path("head.npz")
    np.savez_compressed(out, weight=w, bias=b, block=np.float32(block), review=np.float32(review),
                        exemplars=x.astype(np.float16), exemplar_labels=y,
                        classes=np.array(CLASSES), train_sha256=np.array(sha))
    return Head.load(out)


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
    print(f"wrote head: {h.weight.shape}, block={h.block:.3f}, review={h.review:.3f}")
