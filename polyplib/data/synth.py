"""synthpolyp: colonoscopy-like frames with polyps, generated from a seed, with two imaging "centres" (no downloads)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from polyplib.errors import ConfigError

DEFAULT_N = 200


@dataclass(frozen=True)
class Centre:
    """Imaging protocol of one synthetic centre: native size, colour cast, illumination, optics and sensor noise."""

    size: tuple[int, int]
    gain: tuple[float, float, float]
    brightness: float
    vignette: float
    blur: float
    noise: float
    circular_field: bool


CENTRES = {
    "A": Centre(size=(240, 320), gain=(1.0, 0.95, 0.9), brightness=1.0, vignette=0.35, blur=0.6, noise=0.015,
                circular_field=False),
    "B": Centre(size=(288, 288), gain=(0.9, 0.95, 1.08), brightness=0.8, vignette=0.6, blur=1.4, noise=0.045,
                circular_field=True),
}


def _smooth_noise(rng: np.random.Generator, hw: tuple[int, int], cells: int, channels: int = 1) -> np.ndarray:
    """Value noise in [-1, 1]: a coarse random grid upsampled bicubically to hw."""
    grid = rng.uniform(-1, 1, size=(cells, cells, channels)).astype(np.float32)
    out = cv2.resize(grid, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)
    return out.reshape(hw[0], hw[1], channels)


def _polyp_outline(rng: np.random.Generator, centre: np.ndarray, radius: float) -> np.ndarray:
    """Elliptic or lobulated closed contour r(θ) = R (1 + Σ a_k cos(kθ + φ_k)), rotated, as int32 points."""
    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    lobes = rng.uniform(0, 0.18 if rng.random() < 0.5 else 0.06, size=4)
    r = radius * (1 + sum(a * np.cos((k + 2) * theta + rng.uniform(0, 2 * np.pi)) for k, a in enumerate(lobes)))
    aspect, angle = rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)
    x, y = r * np.cos(theta), aspect * r * np.sin(theta)
    rotated = np.stack([x * np.cos(angle) - y * np.sin(angle), x * np.sin(angle) + y * np.cos(angle)], axis=1)
    return np.round(rotated + centre).astype(np.int32)


def _mucosa(rng: np.random.Generator, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pinkish mucosa with texture, fine detail, concentric folds and a dark lumen; returns (rgb, (yy, xx) grid)."""
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]].astype(np.float32)
    base = np.array([0.82, 0.42, 0.36], np.float32) + rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    texture = 0.06 * _smooth_noise(rng, hw, 6, 3) + 0.03 * _smooth_noise(rng, hw, 40)
    lumen = np.array([rng.uniform(0.2, 0.8) * hw[1], rng.uniform(0.2, 0.8) * hw[0]], np.float32)
    radial = np.hypot(xx - lumen[0], yy - lumen[1]) / max(hw)
    warp = 0.05 * _smooth_noise(rng, hw, 5)[..., 0]
    folds = np.sin(2 * np.pi * (radial + warp) * rng.uniform(3, 6) + rng.uniform(0, 2 * np.pi))
    shade = (1 - 0.12 * np.maximum(folds, 0) ** 3) * (1 - 0.75 * np.exp(-(radial / rng.uniform(0.08, 0.16)) ** 2))
    return (base + texture) * shade[..., None], (yy, xx)


def _add_polyps(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Paint 1-3 dome-shaded polyps with their own tint and surface texture; returns the {0,1} mask."""
    hw = rgb.shape[:2]
    mask = np.zeros(hw, np.uint8)
    count = rng.choice([1, 2, 3], p=[0.7, 0.25, 0.05])
    for _ in range(count):
        radius = rng.uniform(0.06, 0.26) * min(hw)
        centre = np.array([rng.uniform(radius, hw[1] - radius), rng.uniform(radius, hw[0] - radius)])
        outline = _polyp_outline(rng, centre, radius)
        x0, y0 = np.maximum(outline.min(axis=0) - 4, 0)
        x1, y1 = np.minimum(outline.max(axis=0) + 5, (hw[1], hw[0]))
        single = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(single, [outline - (x0, y0)], 1)
        height = cv2.distanceTransform(single, cv2.DIST_L2, 3)
        height = np.sqrt(height / max(float(height.max()), 1.0))
        light = rng.uniform(-1, 1, 2)
        gy, gx = np.gradient(height)
        shading = 1 + 0.9 * radius * (light[0] * gx + light[1] * gy) / 8 + 0.12 * height
        tint = np.array([1.0, 0.85, 0.85], np.float32) * rng.uniform(0.9, 1.12, 3).astype(np.float32)
        pits = 1 + 0.08 * _smooth_noise(rng, single.shape, max(int(min(single.shape) / 6), 2))[..., 0]
        alpha = cv2.GaussianBlur(single.astype(np.float32), (0, 0), 1.5)[..., None]
        patch = rgb[y0:y1, x0:x1]
        patch[:] = alpha * patch * (tint * (shading * pits)[..., None]) + (1 - alpha) * patch
        mask[y0:y1, x0:x1] |= single
    return mask


def _specular(rng: np.random.Generator, rgb: np.ndarray) -> None:
    """Saturated specular reflections: a few small bright blobs."""
    hw = rgb.shape[:2]
    spots = np.zeros(hw, np.float32)
    for _ in range(rng.integers(3, 12)):
        centre = (int(rng.uniform(0, hw[1])), int(rng.uniform(0, hw[0])))
        axes = (int(rng.uniform(1, 6)), int(rng.uniform(1, 4)))
        cv2.ellipse(spots, centre, axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
    spots = cv2.GaussianBlur(spots, (0, 0), 1.2)[..., None]
    rgb[:] = rgb * (1 - spots) + spots


def synth_frame(seed: int, centre: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """One frame (RGB uint8 [H, W, 3], mask {0,1} uint8 [H, W]); a pure function of (seed, centre, index)."""
    protocol = _centre(centre)
    rng = np.random.default_rng([seed, ord(centre), index])
    hw = protocol.size
    rgb, grid = _mucosa(rng, hw)
    mask = _add_polyps(rng, rgb)
    _specular(rng, rgb)
    yy, xx = grid
    r2 = ((xx - hw[1] / 2) / (hw[1] / 2)) ** 2 + ((yy - hw[0] / 2) / (hw[0] / 2)) ** 2
    illumination = protocol.brightness * (1 - protocol.vignette * np.minimum(r2, 1.5) / 1.5)
    rgb *= illumination[..., None] * np.array(protocol.gain, np.float32)
    rgb = cv2.GaussianBlur(rgb, (0, 0), protocol.blur)
    rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * protocol.noise
    if protocol.circular_field:
        field = (r2 <= 1.0).astype(np.uint8)
        rgb *= field[..., None]
        mask *= field
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), mask


def _centre(centre: str) -> Centre:
    if centre not in CENTRES:
        raise ConfigError(f"synthpolyp centre must be one of {sorted(CENTRES)}; got {centre!r}")
    return CENTRES[centre]


def synth_ids(n: int, centre: str) -> list[str]:
    """Ids of the first n frames of a centre: 'A0000', 'A0001', ..."""
    _centre(centre)
    if n < 1:
        raise ConfigError(f"synthpolyp n must be >= 1; got {n}")
    return [f"{centre}{index:04d}" for index in range(n)]
