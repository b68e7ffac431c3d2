"""Tiny randomly initialised diffusers pipelines, saved to folders once per test run.

The component configs follow diffusers' own fast tests (tests/pipelines/wan, ltx, cogvideo):
two-layer transformers, 3–8 channel VAEs, a T5 of width 32. Their tokenizers come from the
hub there; here a fixed-vocabulary Unigram tokenizer is built with the `tokenizers` library
(a trained one differs between runs). Nothing touches the network: `no_network` makes any
socket connection fail during the tests that load folders.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

WORDS = (
    "a the an of in on over under and with to at is are red green blue yellow white black "
    "ball cube cat dog bird fish car tree sky sea grass field city street room light dark big "
    "small slowly fast runs flies rolls walks jumps camera pans zooms sunset night day"
).split()


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = ["<pad>", "</s>", "<unk>", "▁"] + [f"▁{w}" for w in WORDS] + list("abcdefghijklmnopqrstuvwxyz")
    vocab = [(piece, -1.0 - i / 100) for i, piece in enumerate(pieces)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0)


def tiny_t5(vocab_size: int, *, umt5: bool = False):
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    sizes = dict(vocab_size=vocab_size, d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2,
                 relative_attention_num_buckets=8)
    return UMT5EncoderModel(UMT5Config(**sizes)) if umt5 else T5EncoderModel(T5Config(**sizes))


def tiny_wan_vae():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def tiny_wan_transformer(*, in_channels: int = 16, image_dim: int | None = None,
                         pos_embed_seq_len: int | None = None, seed: int = 0):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=in_channels,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=image_dim,
        pos_embed_seq_len=pos_embed_seq_len,
    )


def build_wan(folder: Path, *, kind: str) -> Path:
    """kind: "t2v", "i2v" (2.1, CLIP image encoder), "flf2v" (first/last frame), "two_expert" (2.2),
    "ti2v" (2.2 TI2V-5B style: one text+image model, `expand_timesteps`)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanPipeline

    tokenizer = tiny_tokenizer()
    common = dict(vae=tiny_wan_vae(), scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
                  text_encoder=tiny_t5(len(tokenizer), umt5=True), tokenizer=tokenizer)
    if kind == "t2v":
        pipe = WanPipeline(transformer=tiny_wan_transformer(), **common)
    elif kind == "ti2v":
        pipe = WanPipeline(transformer=tiny_wan_transformer(), expand_timesteps=True, **common)
    elif kind == "two_expert":
        pipe = WanPipeline(transformer=tiny_wan_transformer(seed=0), transformer_2=tiny_wan_transformer(seed=1),
                           boundary_ratio=0.875, **common)
    else:
        from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

        torch.manual_seed(0)
        encoder = CLIPVisionModel(CLIPVisionConfig(
            hidden_size=4, num_hidden_layers=2, num_attention_heads=2, image_size=8,
            intermediate_size=16, patch_size=4,
        ))
        tokens = (8 // 4) ** 2 + 1  # patches + class token
        transformer = tiny_wan_transformer(
            in_channels=36, image_dim=4, pos_embed_seq_len=2 * tokens if kind == "flf2v" else None
        )
        pipe = WanImageToVideoPipeline(transformer=transformer, image_encoder=encoder,
                                       image_processor=CLIPImageProcessor(crop_size=8, size=8), **common)
    pipe.save_pretrained(folder)
    return folder


def build_ltx(folder: Path, *, condition: bool = False) -> Path:
    """An LTXPipeline (or LTXConditionPipeline) folder whose VAE compresses like the real one:
    32× in space, 8× in time."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
        attention_head_dim=8, cross_attention_dim=32, num_layers=1, caption_channels=32,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False, False, False, False, False), upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1), timestep_conditioning=False, patch_size=4, patch_size_t=1,
        encoder_causal=True, decoder_causal=False,
    )
    pipe = (LTXConditionPipeline if condition else LTXPipeline)(
                       transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
                       text_encoder=tiny_t5(len(tokenizer)), tokenizer=tokenizer)
    pipe.save_pretrained(folder)
    return folder


def build_cogvideox(folder: Path, *, i2v: bool = False) -> Path:
    """CogVideoX-2b style text model, or (i2v) a 5b-I2V style one with learned positions."""
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXImageToVideoPipeline,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
        DDIMScheduler,
    )

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    heads = dict(num_attention_heads=2, attention_head_dim=16, in_channels=8, use_rotary_positional_embeddings=True,
                 use_learned_positional_embeddings=True) if i2v else dict(num_attention_heads=4, attention_head_dim=8,
                                                                           in_channels=4)
    transformer = CogVideoXTransformer3DModel(
        **heads, out_channels=4, time_embed_dim=2,
        text_embed_dim=32, num_layers=1, sample_width=2, sample_height=2, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=16,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4,
    )
    pipe = (CogVideoXImageToVideoPipeline if i2v else CogVideoXPipeline)(
                             transformer=transformer, vae=vae, scheduler=DDIMScheduler(),
                             text_encoder=tiny_t5(len(tokenizer)), tokenizer=tokenizer)
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors gain nothing from a thread pool, and on a shared 2-core machine its
    synchronisation made each generation ~10× slower (1.2 s vs 10–19 s wall). Restored after
    each module: a "package" scope in a folder without __init__.py lasts the whole test run."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory) -> dict[str, Path]:
    """Built lazily, once per test run: ``tiny_folders["wan_t2v"]`` etc."""

    class Folders(dict):
        def __missing__(self, key: str) -> Path:
            root = tmp_path_factory.mktemp(key)
            builders = {
                "wan_t2v": lambda: build_wan(root, kind="t2v"),
                "wan_i2v": lambda: build_wan(root, kind="i2v"),
                "wan_flf2v": lambda: build_wan(root, kind="flf2v"),
                "wan_two_expert": lambda: build_wan(root, kind="two_expert"),
                "wan_ti2v": lambda: build_wan(root, kind="ti2v"),
                "ltx": lambda: build_ltx(root),
                "ltx_condition": lambda: build_ltx(root, condition=True),
                "cogvideox": lambda: build_cogvideox(root),
                "cogvideox_i2v": lambda: build_cogvideox(root, i2v=True),
            }
            self[key] = builders[key]()
            return self[key]

    return Folders()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] or kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


sys.path.insert(0, str(Path(__file__).parent))  # so test modules can `import tiny_specs`
