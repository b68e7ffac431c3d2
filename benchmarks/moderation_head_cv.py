"""Why the moderation head is an MLP: 5-fold cross-validation of a linear head against it.

    python benchmarks/moderation_head_cv.py        # ~2.5 min on 2 idle cores (mostly embedding)

On the head's own training files only (never an evaluation set): each prompt is scored by a
head that did not see it, and the script prints the share of disallowed prompts blocked when
the threshold refuses 1 %, 3 % or 5 % of the benign ones. The linear head is the
class-balanced softmax regression cinepatch shipped before the MLP; the MLP is
``cinepatch.safety.head._fit`` as shipped.
"""

from __future__ import annotations

import time

import numpy as np

from cinepatch.safety.embed import get_minilm, one_blas_thread
from cinepatch.safety.head import CLASSES, _fit, _forward, _softmax, _threshold, load_training_set


def fit_linear(x: np.ndarray, y: np.ndarray, *, l2: float = 1e-3, steps: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced multinomial logistic regression by full-batch gradient descent."""
    n, d = x.shape
    k = len(CLASSES)
    sample_w = (n / (k * np.maximum(np.bincount(y, minlength=k), 1)))[y]
    onehot = np.eye(k)[y]
    w, b = np.zeros((d, k)), np.zeros(k)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    for _ in range(steps):
        g = (_softmax(x @ w + b) - onehot) * sample_w[:, None] / n
        vw = 0.9 * vw - 2.0 * (x.T @ g + l2 * w)
        vb = 0.9 * vb - 2.0 * g.sum(0)
        w, b = w + vw, b + vb
    return w, b


def main() -> None:
    texts, y, _ = load_training_set()
    x = get_minilm().encode(texts).astype(np.float64)
    folds = np.random.default_rng(0).permutation(len(y)) % 5
    print(f"{len(y)} training prompts, {int((y != 0).sum())} disallowed; held-out disallowed blocked at "
          "a benign refusal rate of 1 % / 3 % / 5 %:")
    for name in ("linear", "MLP 128"):
        t0 = time.perf_counter()
        held = np.zeros(len(y))  # 1 - p(none) from the head that did not see the prompt
        for f in range(5):
            train, test = folds != f, folds == f
            if name == "linear":
                w, b = fit_linear(x[train], y[train])
                probs = _softmax(x[test] @ w + b)
            else:
                probs = _softmax(_forward(_fit(x[train], y[train]), x[test])[1])
            held[test] = 1.0 - probs[:, 0]
        benign, bad = held[y == 0], held[y != 0]
        rates = " / ".join(f"{(bad >= _threshold(benign, r)).mean():.3f}" for r in (0.01, 0.03, 0.05))
        print(f"  {name:8s} {rates}   ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    with one_blas_thread():
        main()
