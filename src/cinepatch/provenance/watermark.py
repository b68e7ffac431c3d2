"""Invisible watermark: a 32-bit payload spread over the luma of every frame.

Design (spread spectrum on a frame-relative grid)::

    codeword (64 bits) = 16 keyed sync bits | 32 payload bits | CRC-16 of the payload
    carriers (64, 1024) = keyed ±1 mask ⊙ 64 keyed rows of a 1024×1024 Hadamard matrix
    chips (32, 32)      = H · (codeword · carriers / 8)    one value per cell of a 32×32 grid
    delta (H, W)        = bilinear upsample of chips × strength
    frame + delta       added equally to R, G and B, so only luma changes

``H = (I − G⊗G)³`` (``G`` = binomial [1, 2, 1]/4 per axis of the grid) is a fixed high-pass on
the chip grid: it moves the mark's energy out of the coarse scales, where natural footage is
strongest and which the detector's high-pass discards anyway, into the finer cell scales, which
H.264 at CRF 28 and a 50 % downscale still keep. The detector applies the same symmetric ``H`` to
what it samples (the matched filter).

The grid is defined relative to the frame (cell = 1/32 of the width and height), so a resize
keeps it aligned; the same pattern is in every frame, so the detector averages all frames before
correlating (moving content averages out, the mark adds up). The carriers are orthogonal, so
the bits do not interfere while the grid is aligned. The strength is set per clip so the mark's
RMS hits a target PSNR (38.5 dB by default), with the same amplitude over the whole frame. By
default the embedder also runs two rounds of informed embedding: it reads its own output with the
detector and moves weight to the carriers the content works against (see :func:`embed`).

Detection: luma of every frame → 128×128 → high-pass (minus a Gaussian blur) → average over
frames → local contrast normalisation → spectral whitening → local contrast normalisation →
sample the 32×32 cell centres under a geometric hypothesis (scale and offset per axis, for
crops) → the grid filter ``H`` → correlate with the carriers. Hypotheses: the identity first,
then crops keeping 80–100 % of each side on a 0.01 grid (coarse search, then a local refinement).

False positives, stated: for hypothesis ``h`` the sync statistic is a Rademacher sum over the
keyed mask (the sampled cells, filtered by ``H``, depend on the content and not on the key), so
for any unmarked video (independent of the key) Hoeffding's inequality gives
``P(z_h ≥ t) ≤ exp(−t²/2)``. Each hypothesis gets a weight ``w_h`` (½ for the identity, ½ split
evenly over the K = 53,361 crop hypotheses) and its p-value is ``exp(−z_h²/2) / w_h``; the
reported p-value is the minimum over the hypotheses examined, which by the union bound is a valid
p-value for the whole search. ``found`` needs p ≤ 1e-6 **and** at most 2 of the 16 sync bits
wrong **and** the CRC-16 to match, so the false-positive probability per video is ≤ 1e-6 (the
sync and CRC checks only lower it further). The CRC is decoded Chase-style: up to the 4 least
reliable of the 48 data bits may be flipped to meet it, so when a mark is present but its payload
is beyond repair, a wrong payload passes with probability ≤ 16 · 2⁻¹⁶ ≈ 2.4e-4.
"""

from __future__ import annotations

import binascii
import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cinepatch.errors import InvalidParameter

__all__ = [
    "DEFAULT_KEY",
    "PAYLOAD_BITS",
    "FALSE_POSITIVE_BOUND",
    "Detection",
    "embed",
    "detect",
    "psnr",
]

DEFAULT_KEY = b"cinepatch/watermark/v1"
GRID = 32  # cells per side of the frame-relative grid
N_CHIPS = GRID * GRID  # 1024, a power of two for the Hadamard carriers
N_SYNC, PAYLOAD_BITS, N_CRC = 16, 32, 16
N_BITS = N_SYNC + PAYLOAD_BITS + N_CRC  # 64 carriers
WORK = 128  # detection works on the luma resized to WORK × WORK
CHUNK = 16  # frames per step where a video is processed frame by frame (flat memory)
DEFAULT_PSNR = 38.5  # target PSNR of the mark (dB); rounding to uint8 costs < 0.05 dB
FALSE_POSITIVE_BOUND = 1e-6  # `found` needs the search-wide p-value to be at most this
MAX_SYNC_ERRORS = 2
CHASE_BITS = 4  # the CRC may be met by flipping up to this many of the least reliable data bits
SHAPE_ORDER = 3  # the chip grid is high-passed (I − G⊗G)^3 before upsampling (see _shape)
DEFAULT_INFORMED = 2  # rounds of informed embedding

# The crop hypotheses: scale (fraction of the original side still visible) and offset (where the
# visible part starts, as a fraction of the original side), both on a 0.01 grid.
_SCALES = np.round(np.arange(0.80, 1.0001, 0.01), 2)
_AXIS_HYPOTHESES = [(s, o) for s in _SCALES for o in np.round(np.arange(0.0, 1.0 - s + 1e-9, 0.01), 2)]
N_HYPOTHESES = len(_AXIS_HYPOTHESES) ** 2  # 231² = 53,361
_W_IDENTITY = 0.5
_W_CROP = 0.5 / N_HYPOTHESES


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` read from a video.

    ``found``: the mark is there (p-value ≤ 1e-6, sync bits match, CRC matches).
    ``payload``: the 32-bit payload when found, else ``None``; ``decoded`` is the best-guess
    payload whatever ``found`` says (for measuring bit accuracy). ``confidence`` is ``1 − p_value``.
    ``p_value`` bounds the probability that an unmarked video scores this high anywhere in the
    search. ``z_sync``: the sync statistic; ``snr``: median |z| of the payload bits;
    ``sync_errors``: sync bits read wrong; ``crc_ok``; ``transform``: ``(sx, sy, ox, oy)`` — the
    part of the original frame that the video shows.
    """

    found: bool
    payload: int | None
    confidence: float
    p_value: float
    decoded: int
    z_sync: float
    snr: float
    sync_errors: int
    crc_ok: bool
    transform: tuple[float, float, float, float]
    frames: int

    def to_dict(self) -> dict:
        return {
            "found": self.found,
            "payload": self.payload,
            "payload_hex": None if self.payload is None else f"{self.payload:08x}",
            "confidence": self.confidence,
            "p_value": self.p_value,
            "z_sync": round(self.z_sync, 3),
            "snr": round(self.snr, 3),
            "sync_errors": self.sync_errors,
            "crc_ok": self.crc_ok,
            "transform": list(self.transform),
            "frames": self.frames,
        }


# ---------------------------------------------------------------------------------------------
# Keyed code
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Code:
    carriers: np.ndarray  # (64, 1024) float32 ±1: mask ⊙ Hadamard rows
    mask: np.ndarray  # (1024,) ±1
    sync: np.ndarray  # (16,) ±1
    sync_weights: np.ndarray  # (1024,) a_j = Σ_{i∈sync} s_i h_ij (the sync sum is Σ v_j m_j a_j)


def _stream(key: bytes, label: bytes, n: int) -> bytes:
    return hashlib.shake_256(key + b"/" + label).digest(n)


def _pm1(data: bytes, n: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[:n]
    return bits.astype(np.float32) * 2 - 1


@lru_cache(maxsize=8)
def _code(key: bytes) -> _Code:
    mask = _pm1(_stream(key, b"mask", N_CHIPS // 8), N_CHIPS)
    # 64 distinct Hadamard rows (never row 0, the constant one), drawn from the key.
    raw = np.frombuffer(_stream(key, b"rows", 4 * 4096), dtype=np.uint32) % (N_CHIPS - 1) + 1
    rows: list[int] = []
    for r in raw:
        if int(r) not in rows:
            rows.append(int(r))
        if len(rows) == N_BITS:
            break
    j = np.arange(N_CHIPS)
    popcount = np.vectorize(lambda x: bin(x).count("1"))
    hadamard = np.stack([1 - 2 * (popcount(r & j) % 2) for r in rows]).astype(np.float32)  # (64, 1024)
    sync = _pm1(_stream(key, b"sync", N_SYNC // 8), N_SYNC)
    return _Code(
        carriers=hadamard * mask[None],
        mask=mask,
        sync=sync,
        sync_weights=(sync[:, None] * hadamard[:N_SYNC]).sum(0),
    )


def _codeword(payload: int, key: bytes) -> np.ndarray:
    data = payload.to_bytes(4, "big")
    crc = binascii.crc_hqx(data, 0xFFFF).to_bytes(2, "big")
    bits = _pm1(data + crc, PAYLOAD_BITS + N_CRC)
    return np.concatenate([_code(key).sync, bits])  # (64,) ±1


def _bits_to_int(bits: np.ndarray) -> int:
    """32 booleans (or soft values, read by sign) → the payload integer."""
    return int.from_bytes(np.packbits((np.asarray(bits) > 0).astype(np.uint8)).tobytes(), "big")


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) < 8:
        raise InvalidParameter("key", key, "bytes of length ≥ 8")
    return bytes(key)


# ---------------------------------------------------------------------------------------------
# Resampling helpers (separable matrices; no SciPy)
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _resample_matrix(n_in: int, n_out: int, support_scale: float = 1.0) -> np.ndarray:
    """(n_out, n_in) triangle-filter resampling with cell-centred coordinates (antialiased)."""
    scale = n_in / n_out
    support = max(scale, 1.0) * support_scale
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    x = np.arange(n_in)
    w = np.clip(1.0 - np.abs(x[None, :] - centres[:, None]) / support, 0.0, None)
    w /= w.sum(1, keepdims=True)
    return w.astype(np.float32)


@lru_cache(maxsize=16)
def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) Gaussian blur with mirrored edges."""
    x = np.arange(n)
    w = np.exp(-0.5 * ((x[None, :] - x[:, None]) / sigma) ** 2)
    w /= w.sum(1, keepdims=True)
    return w.astype(np.float32)


def _luma(frames: np.ndarray) -> np.ndarray:
    f = frames.astype(np.float32)
    return f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114  # (T, H, W)


def _box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)² window on the last two axes, edges padded by replication."""
    pad = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(r + 1, r), (r + 1, r)], mode="edge")
    c = pad.cumsum(-1).cumsum(-2)
    k = 2 * r + 1
    s = c[..., k:, k:] - c[..., :-k, k:] - c[..., k:, :-k] + c[..., :-k, :-k]
    return s / (k * k)


@lru_cache(maxsize=1)
def _grid_blur() -> np.ndarray:
    """(GRID, GRID) binomial [1, 2, 1] / 4 blur along one axis of the chip grid, edges replicated."""
    g = np.zeros((GRID, GRID), np.float32)
    for i in range(GRID):
        for d, w in ((-1, 0.25), (0, 0.5), (1, 0.25)):
            g[i, min(max(i + d, 0), GRID - 1)] += w
    return g  # symmetric


def _shape(v: np.ndarray) -> np.ndarray:
    """Apply the chip-grid high-pass ``H = (I − G ⊗ G)^SHAPE_ORDER`` to (..., 1024) chip vectors.

    The embedder puts ``H · chips`` on the grid, so the mark's energy sits at the finer cell
    scales (where natural video has less energy and the detector looks) instead of the coarse
    ones its high-pass throws away; the detector applies the same symmetric ``H`` to the sampled
    cells (the matched filter). ``H`` depends on neither the content nor the key.
    """
    g = _grid_blur()
    x = v.reshape(-1, GRID, GRID)
    for _ in range(SHAPE_ORDER):
        x = x - g @ x @ g.T
    return x.reshape(v.shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Embedding
# ---------------------------------------------------------------------------------------------


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InvalidParameter("frames", f"{frames.shape} {frames.dtype}", "uint8 array (T, H, W, 3)")
    if frames.shape[0] == 0 or min(frames.shape[1:3]) < 16:
        raise InvalidParameter("frames", tuple(frames.shape), "at least one frame of at least 16×16")
    return frames


def pattern(payload: int, height: int, width: int, *, key: bytes = DEFAULT_KEY) -> np.ndarray:
    """The plain mark for one frame size (no informed weights), ``(H, W)``, RMS ≈ 1."""
    return _upsample(_codeword(payload, key), _code(key), height, width)


def _upsample(weights: np.ndarray, code: _Code, height: int, width: int) -> np.ndarray:
    chips = _shape(weights @ code.carriers / math.sqrt(N_BITS)).reshape(GRID, GRID)
    return _resample_matrix(GRID, height) @ chips @ _resample_matrix(GRID, width).T  # (H, W)


def embed(
    frames: np.ndarray,
    payload: int,
    *,
    key: bytes = DEFAULT_KEY,
    target_psnr: float = DEFAULT_PSNR,
    informed: int = DEFAULT_INFORMED,
) -> np.ndarray:
    """Return a marked copy of ``frames`` ((T, H, W, 3) uint8) carrying the 32-bit ``payload``.

    The mark has the same amplitude everywhere in the frame (a texture mask that put more of it
    in busy areas measured worse on camera footage: H.264 and the detector's local normalisation
    both discount busy areas) and is the same in every frame; its RMS is set by ``target_psnr``.

    ``informed``: rounds of informed embedding (default 2; 0 turns it off) — the embedder runs
    the detector on its own output (at the identity) and moves energy to the carriers the content
    works against: data bits read with a margin under 1.5 σ get more weight, and the sync
    carriers get more while the sync statistic is under 10. The total stays at the target PSNR.
    With the old low-pass mark this fixed bits at the identity but cost margin after H.264; with
    the high-passed chip grid (:func:`_shape`) it also holds after H.264, resizing and cropping.
    """
    frames = _check_frames(frames)
    key = _check_key(key)
    if not isinstance(payload, int) or not 0 <= payload < 2**PAYLOAD_BITS:
        raise InvalidParameter("payload", payload, f"an integer in 0..2^{PAYLOAD_BITS}-1")
    if not 30.0 <= target_psnr <= 60.0:
        raise InvalidParameter("target_psnr", target_psnr, "30 to 60 dB")
    if not isinstance(informed, int) or not 0 <= informed <= 8:
        raise InvalidParameter("informed", informed, "an integer 0..8")
    height, width = frames.shape[1:3]
    code = _code(key)
    bits = _codeword(payload, key)  # (64,) ±1
    rms_target = 255.0 / 10 ** (target_psnr / 20)

    def scale(weights: np.ndarray) -> tuple[np.ndarray, float]:
        base = _upsample(weights, code, height, width)
        return base, rms_target / max(float(np.sqrt(np.mean(base**2))), 1e-6)

    weights = bits.copy()
    if informed:
        # The detector's view at WORK resolution, made linear in the mark: host + s·pattern.
        host = _work_luma(frames)
        identity = np.array([[1.0, 1.0, 0.0, 0.0]])
        mean_w = 1.0
        for _ in range(informed):
            _, s = scale(weights)
            v = _sample(_residual_from_work(host, mark=s * _upsample(weights, code, WORK, WORK)), identity)[0]
            z = code.carriers @ v / (math.sqrt(float(v @ v)) + 1e-9)
            margin = bits * z
            z_sync = float(_sync_z(v[None], code)[0])
            data = slice(N_SYNC, N_BITS)
            good = margin[data] >= 1.5
            if good.all() and z_sync >= 10.0:
                break
            # Gain from weight to margin, measured on the bits that are fine.
            ref = margin[data][good] if good.any() else np.maximum(margin[data], 0.5)
            gain = max(float(np.median(ref)) / mean_w, 0.1)
            boost = np.clip(1.5 - margin[data], 0.0, None) / gain
            weights[data] += bits[data] * boost
            if z_sync < 10.0:
                weights[:N_SYNC] *= min(1.5, 10.0 / max(z_sync, 2.0))
            cap = 4.0 * float(np.mean(np.abs(weights)))
            weights = np.clip(weights, -cap, cap)
            mean_w = float(np.mean(np.abs(weights[data])))

    base, s = scale(weights)
    mark = (s * base)[..., None].astype(np.float32)  # (H, W, 1)
    out = np.empty_like(frames)
    for start in range(0, len(frames), CHUNK):  # chunks keep memory flat on long videos
        chunk = frames[start : start + CHUNK].astype(np.float32) + mark
        out[start : start + CHUNK] = np.clip(np.rint(chunk), 0, 255)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 arrays of the same shape (videos: ``CHUNK`` frames at a time)."""
    if a.shape != b.shape:
        raise InvalidParameter("frames", f"{a.shape} and {b.shape}", "two arrays of the same shape")
    total = sum(
        float(np.sum((a[i : i + CHUNK].astype(np.float64) - b[i : i + CHUNK].astype(np.float64)) ** 2))
        for i in range(0, max(len(a), 1), CHUNK)
    )
    mse = total / max(a.size, 1)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------


def _work_luma(frames: np.ndarray) -> np.ndarray:
    """Luma of every frame resized to WORK × WORK: (T, WORK, WORK) float32."""
    t, height, width, _ = frames.shape
    ry, rx = _resample_matrix(height, WORK), _resample_matrix(width, WORK)
    out = np.empty((t, WORK, WORK), np.float32)
    for start in range(0, t, CHUNK):  # chunks keep memory flat on long, large videos
        out[start : start + CHUNK] = ry @ _luma(frames[start : start + CHUNK]) @ rx.T
    return out


def _residual_from_work(y: np.ndarray, mark: np.ndarray | None = None) -> np.ndarray:
    """Frame-averaged, contrast-normalised high-pass of (T, WORK, WORK) luma, with ``mark``
    (WORK, WORK) added to every frame; ``CHUNK`` frames at a time."""
    g = _gauss_matrix(WORK, 2.0)
    total = np.zeros((WORK, WORK))
    for start in range(0, len(y), CHUNK):
        chunk = y[start : start + CHUNK] if mark is None else y[start : start + CHUNK] + mark
        hp = chunk - g @ chunk @ g.T
        hp /= hp.std(axis=(1, 2), keepdims=True) + 0.5
        total += hp.sum(0)
    acc = _local_normalise(total / len(y))
    # Whiten the spectrum (divide by the locally smoothed magnitude): periodic textures —
    # stripes, checkerboards — are narrow peaks there and shrink, the broadband mark does not.
    # Normalising first keeps one strong feature (the visible mark's letters) from ringing
    # across the whole frame through this global filter.
    spectrum = np.fft.fft2(acc)
    magnitude = _box(np.abs(spectrum)[None], 1)[0]
    acc = np.real(np.fft.ifft2(spectrum / (magnitude + 1e-3 * np.median(magnitude) + 1e-9)))
    r = _local_normalise(acc)
    m = _resample_matrix(WORK, WORK, support_scale=WORK / GRID)  # triangle ≈ the bilinear cell
    return m @ r @ m.T


def _local_normalise(x: np.ndarray) -> np.ndarray:
    """Divide by the local RMS and clip, so edges and texture do not drown the mark."""
    g = _gauss_matrix(WORK, 4.0)
    local = np.sqrt(g @ (x**2) @ g.T) + 1e-6 * (float(np.sqrt(np.mean(x**2))) + 1e-9)
    return np.clip(x / local, -3.0, 3.0).astype(np.float32)


def _residual(frames: np.ndarray) -> np.ndarray:
    return _residual_from_work(_work_luma(frames))


def _sample(res: np.ndarray, hyps: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``res`` at the 32×32 cell centres under each hypothesis, passed through
    the chip-grid high-pass :func:`_shape` (the matched filter of the shaped mark).

    ``hyps`` (K, 4) = (sx, sy, ox, oy); returns (K, 1024); cells outside the visible part of the
    frame are zero before the filter.
    """
    return _shape(_sample_cells(res, hyps))


def _sample_cells(res: np.ndarray, hyps: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``res`` at the cell centres, (K, 1024), zero outside the frame."""
    u = (np.arange(GRID) + 0.5) / GRID  # cell centres in original coordinates
    sx, sy, ox, oy = (hyps[:, i : i + 1] for i in range(4))
    xs = (u[None] - ox) / sx  # (K, 32) in observed coordinates 0..1
    ys = (u[None] - oy) / sy
    valid = ((xs >= 0) & (xs <= 1))[:, None, :] & ((ys >= 0) & (ys <= 1))[:, :, None]  # (K, 32, 32)
    px = np.clip(xs * WORK - 0.5, 0, WORK - 1.001)
    py = np.clip(ys * WORK - 0.5, 0, WORK - 1.001)
    x0, y0 = px.astype(int), py.astype(int)
    fx, fy = (px - x0)[:, None, :], (py - y0)[:, :, None]
    yi, xi = y0[:, :, None], x0[:, None, :]
    v = (
        res[yi, xi] * (1 - fy) * (1 - fx)
        + res[yi, xi + 1] * (1 - fy) * fx
        + res[yi + 1, xi] * fy * (1 - fx)
        + res[yi + 1, xi + 1] * fy * fx
    )
    return (v * valid).reshape(len(hyps), N_CHIPS).astype(np.float32)


def _sync_z(v: np.ndarray, code: _Code) -> np.ndarray:
    coeff = code.mask * code.sync_weights  # (1024,)
    num = v @ coeff
    den = np.sqrt((v**2) @ (code.sync_weights**2)) + 1e-9
    return num / den  # (K,)


def _grid_hypotheses(step_scale: float, step_offset: float) -> np.ndarray:
    axis = []
    for s in np.arange(1.0, 0.80 - 1e-9, -step_scale):
        for o in np.arange(0.0, 1.0 - s + 1e-9, step_offset):
            axis.append((s, o))
        centred = (1.0 - s) / 2
        axis.append((s, centred))
    a = np.array(axis)
    sx, ox = np.repeat(a[:, 0], len(a)), np.repeat(a[:, 1], len(a))
    sy, oy = np.tile(a[:, 0], len(a)), np.tile(a[:, 1], len(a))
    return _snap(np.stack([sx, sy, ox, oy], 1))


def _snap(h: np.ndarray) -> np.ndarray:
    """Snap hypotheses onto the 0.01 grid of the stated universe (scale 0.80–1, 0 ≤ o ≤ 1 − s)."""
    h = np.round(h, 2)
    h[:, :2] = np.clip(h[:, :2], 0.80, 1.0)
    h[:, 2] = np.clip(h[:, 2], 0.0, np.round(1.0 - h[:, 0], 2))
    h[:, 3] = np.clip(h[:, 3], 0.0, np.round(1.0 - h[:, 1], 2))
    return np.unique(h, axis=0)


def _crc_ok(bits: np.ndarray) -> bool:
    data = np.packbits(bits.astype(np.uint8)).tobytes()
    return binascii.crc_hqx(data[:4], 0xFFFF).to_bytes(2, "big") == data[4:]


@lru_cache(maxsize=1)
def _chase_patterns() -> np.ndarray:
    """All flip patterns of the CHASE_BITS least reliable bits, fewest flips first."""
    patterns = np.array(
        [[(k >> i) & 1 for i in range(CHASE_BITS)] for k in range(2**CHASE_BITS)], dtype=bool
    )
    return patterns[np.argsort(patterns.sum(1), kind="stable")]


def _decode(v: np.ndarray, code: _Code) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Soft bits z (64,), the data bits (48,) after Chase decoding, sync errors, CRC match."""
    z = (code.carriers @ v) / (math.sqrt(float(v @ v)) + 1e-9)  # (64,)
    sync_errors = int(np.sum(np.sign(z[:N_SYNC]) != code.sync))
    soft = z[N_SYNC:]
    hard = soft > 0
    weakest = np.argsort(np.abs(soft))[:CHASE_BITS]
    # Chase decoding: flip subsets of the least reliable bits, keep the most likely candidate
    # whose CRC matches.
    best, best_cost = None, math.inf
    for flips in _chase_patterns():
        candidate = hard.copy()
        candidate[weakest[flips]] ^= True
        cost = float(np.abs(soft[weakest[flips]]).sum())
        if cost < best_cost and _crc_ok(candidate):
            best, best_cost = candidate, cost
    if best is None:
        return z, hard, sync_errors, False
    return z, best, sync_errors, True


def _p_value(z: float, weight: float) -> float:
    if z <= 0:
        return 1.0
    return min(1.0, math.exp(-0.5 * z * z) / weight)


def detect(frames: np.ndarray, *, key: bytes = DEFAULT_KEY, search: bool = True) -> Detection:
    """Look for the mark in ``frames`` ((T, H, W, 3) uint8, any size ≥ 16×16).

    Tries the frame as it is, then (``search=True``) crops keeping 80–100 % of each side.
    """
    frames = _check_frames(frames)
    key = _check_key(key)
    code = _code(key)
    res = _residual(frames)

    identity = np.array([[1.0, 1.0, 0.0, 0.0]])
    v_id = _sample(res, identity)
    z_id = float(_sync_z(v_id, code)[0])
    best = (_p_value(z_id, _W_IDENTITY), z_id, identity[0], v_id[0])
    _, _, errors, crc_ok = _decode(v_id[0], code)
    done = best[0] <= FALSE_POSITIVE_BOUND and errors <= MAX_SYNC_ERRORS and crc_ok
    if search and not done:
        # Coarse pass on a grid 4× sparser than the universe, then refine the best few locally.
        coarse = _grid_hypotheses(0.04, 0.02)
        z = _sync_z(_sample(res, coarse), code)
        top = coarse[np.argsort(-z)[:6]]
        steps = np.array([-0.02, -0.01, 0.0, 0.01, 0.02])
        local = np.stack(np.meshgrid(steps, steps, steps, steps, indexing="ij"), -1).reshape(-1, 4)
        fine = _snap(np.concatenate([t[None] + local for t in top]))
        v = _sample(res, fine)
        z = _sync_z(v, code)
        i = int(np.argmax(z))
        p = _p_value(float(z[i]), _W_CROP)
        if p < best[0]:
            best = (p, float(z[i]), fine[i], v[i])

    p_value, z_sync, hyp, v_best = best
    z_bits, data_bits, sync_errors, crc_ok = _decode(v_best, code)
    decoded = _bits_to_int(data_bits[:PAYLOAD_BITS])
    found = p_value <= FALSE_POSITIVE_BOUND and sync_errors <= MAX_SYNC_ERRORS and crc_ok
    return Detection(
        found=found,
        payload=decoded if found else None,
        confidence=1.0 - p_value,
        p_value=p_value,
        decoded=decoded,
        z_sync=z_sync,
        snr=float(np.median(np.abs(z_bits[N_SYNC:]))),
        sync_errors=sync_errors,
        crc_ok=crc_ok,
        transform=tuple(float(x) for x in hyp),
        frames=int(frames.shape[0]),
    )
