"""The second learned view of a prompt: character n-grams, TF-IDF weighted, into a softmax.

MiniLM sees meaning; this model sees spelling. It reads "k1ll", "unalive" or a name spelled
three ways as the n-grams it shares with the training prompts, where MiniLM's word pieces may
not. Moderation averages its class probabilities with the MLP head's: in 5-fold
cross-validation on the training prompts that raised the share of disallowed prompts refused
at 3 % benign refused from 0.85 (head alone) to 0.90 (``docs/safety.md``).

scikit-learn does the featurising and the fit (multinomial logistic regression, class-balanced);
the model is stored as arrays — n-grams, IDF weights, coefficients — so loading needs no pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = ["CharModel"]

NGRAMS = (2, 5)  # character n-grams inside word boundaries ("char_wb")
C = 16.0  # inverse L2 strength: chosen by cross-validation on the training set (1, 4, 16, 64)


def _vectorizer(vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, sublinear_tf=True,
                           min_df=1 if vocabulary else 2, vocabulary=vocabulary)


@dataclass(frozen=True)
class CharModel:
    ngrams: np.ndarray  # (V,) str, the feature order
    idf: np.ndarray  # (V,)
    coef: np.ndarray  # (K, V)
    intercept: np.ndarray  # (K,)

    @classmethod
    def fit(cls, texts: list[str], labels: np.ndarray, *, classes: int) -> CharModel:
        """Fit on labelled prompts; labels are 0..classes-1 and every class has prompts."""
        from sklearn.linear_model import LogisticRegression

        vec = _vectorizer().fit(texts)
        lr = LogisticRegression(C=C, max_iter=2000, class_weight="balanced")
        lr.fit(vec.transform(texts), labels)
        if not np.array_equal(lr.classes_, np.arange(classes)):
            missing = sorted(set(range(classes)) - set(lr.classes_.tolist()))
            raise ValueError(f"every class needs training prompts; none for class {missing}")
        return cls(ngrams=vec.get_feature_names_out().astype(str), idf=vec.idf_.astype(np.float32),
                   coef=lr.coef_.astype(np.float32), intercept=lr.intercept_.astype(np.float32))

    def probs(self, texts: list[str]) -> np.ndarray:
        """(B,) texts -> (B, K) class probabilities, column 0 is "none"."""
        z = self._vectorizer.transform(texts) @ self.coef.T + self.intercept  # (B, K)
        z = z - z.max(-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)

    @cached_property
    def _vectorizer(self) -> TfidfVectorizer:  # built once per model: a 32k-entry vocabulary
        vec = _vectorizer({str(g): i for i, g in enumerate(self.ngrams)})
        vec.idf_ = self.idf.astype(np.float64)
        return vec
