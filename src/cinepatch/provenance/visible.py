"""The visible mark: a small, semi-transparent "cinepatch" label in a corner of every frame
("cp" on frames too narrow for the word).

Drawn with Pillow's built-in bitmap font (no font files), white with a dark outline so it reads
on any background, at about 1/24 of the frame height (never under the font's native size), and
never over 3 % of the frame's area where the short label fits that.
Applied before the invisible watermark, which is then embedded over it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cinepatch.errors import InvalidParameter

__all__ = ["CORNERS", "apply_visible_mark"]

CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
MAX_AREA = 0.03  # of the frame: the label's box, outline included


@lru_cache(maxsize=8)
def _glyph(text: str) -> np.ndarray:
    """Alpha mask of ``text`` with a 1-pixel outline: (h, w, 2) float32 — [fill, outline]."""
    font = ImageFont.load_default_imagefont()  # Pillow's embedded bitmap font: no files needed
    left, top, right, bottom = font.getbbox(text)
    w, h = right - left + 2, bottom - top + 2
    fill = Image.new("L", (w, h), 0)
    ImageDraw.Draw(fill).text((1 - left, 1 - top), text, fill=255, font=font)
    f = np.asarray(fill, np.float32) / 255.0
    pad = np.pad(f, 1)
    outline = np.max(
        [pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0
    )
    return np.stack([f, outline], -1)


def _scaled(glyph: np.ndarray, height: int) -> np.ndarray:
    """``glyph`` enlarged by whole pixels to about 1/24 of ``height``."""
    scale = max(1, round(height / 24 / glyph.shape[0]))
    return glyph.repeat(scale, 0).repeat(scale, 1) if scale > 1 else glyph


def apply_visible_mark(
    frames: np.ndarray,
    *,
    text: str = "cinepatch",
    short: str = "cp",
    corner: str = "bottom-right",
    opacity: float = 0.6,
) -> np.ndarray:
    """Return a copy of ``frames`` ((T, H, W, 3) uint8) with the label drawn in ``corner``.

    Where ``text`` would be wider than half the frame or cover more than ``MAX_AREA`` of it,
    ``short`` is drawn instead.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InvalidParameter("frames", f"{frames.shape} {frames.dtype}", "uint8 array (T, H, W, 3)")
    if corner not in CORNERS:
        raise InvalidParameter("corner", corner, ", ".join(CORNERS))
    if not 0.0 < opacity <= 1.0:
        raise InvalidParameter("opacity", opacity, "0 < opacity ≤ 1")
    height, width = frames.shape[1:3]
    glyph = _scaled(_glyph(text), height)
    if short and (glyph.shape[1] > width / 2 or glyph.shape[0] * glyph.shape[1] > MAX_AREA * height * width):
        glyph = _scaled(_glyph(short), height)  # a small frame gets the short form, not a banner
    gh, gw = glyph.shape[:2]
    margin = max(2, height // 64)
    if gh + 2 * margin > height or gw + 2 * margin > width:
        # Too small for the full label: draw only what fits (a frame this small is a thumbnail).
        gh, gw = min(gh, height - 2 * margin), min(gw, width - 2 * margin)
        if gh <= 0 or gw <= 0:
            return frames.copy()
        glyph = glyph[:gh, :gw]
    y = margin if corner.startswith("top") else height - margin - gh
    x = margin if corner.endswith("left") else width - margin - gw
    out = frames.copy()
    region = out[:, y : y + gh, x : x + gw].astype(np.float32)  # (T, gh, gw, 3)
    fill, outline = glyph[..., 0:1], glyph[..., 1:2]
    region = region * (1 - opacity * outline) + 0.0 * opacity * outline  # dark outline
    region = region * (1 - opacity * fill) + 255.0 * opacity * fill  # white letters
    out[:, y : y + gh, x : x + gw] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
    return out
