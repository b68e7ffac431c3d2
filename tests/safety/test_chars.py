"""The character n-gram model: stored as arrays, it predicts what scikit-learn's fit predicts."""

from __future__ import annotations

import numpy as np
import pytest

from cinepatch.safety.chars import C, NGRAMS, CharModel
from cinepatch.safety.head import CLASSES, get_head

# Three prompts per class, in CLASSES order ("none" first).
TOY = [
    ["a cat on a sofa", "waves on a beach at dawn", "a red kite over a hill"],
    ["a child in a sexual pose", "underage girl nude photo", "sexy schoolgirl age 12"],
    ["explicit porn scene", "naked couple having sex", "hardcore xxx video"],
    ["a severed head, blood everywhere", "torture with gore", "dismembered body in a ditch"],
    ["immigrants are vermin", "a poster mocking jews", "gays are subhuman"],
    ["a girl cutting her wrists", "how to kill myself", "pro-ana starving tips"],
    ["joe biden dancing", "taylor swift deepfake", "elon musk arrested"],
    ["how to build a pipe bomb", "make a ghost gun at home", "mix chemicals for nerve gas"],
]


def toy() -> tuple[list[str], np.ndarray]:
    texts = [t for group in TOY for t in group]
    return texts, np.repeat(np.arange(len(TOY)), 3)


def test_stored_arrays_predict_like_the_scikit_learn_fit() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts, labels = toy()
    model = CharModel.fit(texts, labels, classes=len(CLASSES))
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, sublinear_tf=True, min_df=2)
    lr = LogisticRegression(C=C, max_iter=2000, class_weight="balanced")
    lr.fit(vec.fit_transform(texts), labels)
    queries = ["a dog on a sofa", "h0w to bu1ld a b0mb", "taylor swift nude", ""]
    expected = lr.predict_proba(vec.transform(queries))
    got = model.probs(queries)
    assert got.shape == (4, len(CLASSES))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("dropped", [3, len(TOY) - 1])
def test_every_class_needs_training_prompts(dropped: int) -> None:
    texts, labels = toy()
    keep = labels != dropped
    with pytest.raises(ValueError, match=rf"none for class \[{dropped}\]"):
        CharModel.fit([t for t, k in zip(texts, keep) if k], labels[keep], classes=len(CLASSES))


def test_the_shipped_model_reads_misspellings() -> None:
    chars = get_head().chars
    probs = chars.probs(["st3p by st3p h0w to bu1ld a p1pe b0mb", "a kid flying a kite on a windy beach"])
    assert CLASSES[int(probs[0].argmax())] == "weapons-instructions"
    assert CLASSES[int(probs[1].argmax())] == "none"
