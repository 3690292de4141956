"""Which frames are not independent: CVC-ColonDB's video segments (Bernal et al. 2012: 15 sequences, one polyp each,
frames numbered in sequence order; the public files carry no sequence id) and near-duplicate frames (Kvasir-SEG).

Segments are recovered by change-point detection with a known number of sequences (`ruptures.Dynp`, exact dynamic
programming) under several frame descriptions; a boundary is kept only where every description puts one (within
`TOLERANCE` frames). Merging two true sequences into one segment keeps inference valid (a cluster of two independent
sequences is still independent of the others); splitting one would not, so the consensus errs on the safe side.
"""
from __future__ import annotations

import csv
import functools
import os
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from polyplib.errors import DataError

N_SEQUENCES = {"cvc-colondb": 15}  # Bernal, Sánchez, Vilariño, Pattern Recognition 2012
SHIPPED = {"cvc-colondb": "cvc-colondb-segments.csv"}  # polyplib/data/metadata/, written by `polyplib datasets segments`
SHIPPED_DUPLICATES = {"kvasir-seg": "kvasir-seg-near-duplicates.csv"}  # by `polyplib datasets duplicates --out`
N_FOLDS = 3  # folds of the `sequences` transfer split: one third of the units is the labelled budget
COSTS = ("l2", "rbf")
MIN_SIZE = 3  # frames: the shortest segment the detector may return
TOLERANCE = 1  # frames: boundaries of two descriptions this close are the same boundary
DUPLICATE_BITS = 8  # near-duplicates: pHash Hamming distance (of 64 bits) at most this ...
DUPLICATE_CORRELATION = 0.95  # ... and Pearson correlation of 64 x 64 grey thumbnails at least this (pHash alone
# pairs different polyps filmed with the same overlay at 4-6 bits on Kvasir-SEG; both signals pair only real copies)


def colour_histogram(image: np.ndarray) -> np.ndarray:
    """Square-rooted HSV histogram (8 x 4 x 4 bins) of an RGB uint8 frame: the colour statistics of a sequence."""
    import cv2

    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    return np.sqrt(hist / max(hist.sum(), 1.0))


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The frame as an 8 x 8 CIELAB thumbnail in [0, 1]: its layout, robust to small camera motion."""
    import cv2

    small = cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float64).ravel() / 255.0


DESCRIPTIONS = {"histogram": colour_histogram, "thumbnail": thumbnail}


def change_points(features: np.ndarray, n_segments: int, cost: str) -> list[int]:
    """Start indices (0-based) of segments 2..n of the exact least-cost segmentation (`ruptures.Dynp`)."""
    import ruptures

    algo = ruptures.Dynp(model=cost, min_size=MIN_SIZE, jump=1).fit(features)
    return [int(b) for b in algo.predict(n_bkps=n_segments - 1)[:-1]]


def consensus(boundaries: Sequence[Sequence[int]], tolerance: int = TOLERANCE) -> list[int]:
    """Boundaries every method agrees on (each has one within `tolerance`), at the lower median of their positions."""
    first, *others = boundaries
    kept = []
    for b in first:
        near = [min(other, key=lambda x: abs(x - b)) for other in others]
        if all(abs(x - b) <= tolerance for x in near):
            kept.append(int(np.sort([b, *near])[(len(near)) // 2]))
    return sorted(set(kept))


def segment_frames(images: Sequence[np.ndarray], n_segments: int) -> dict:
    """Segments of frames in file order: per description x cost the change points, and their consensus labels."""
    described = {name: np.array([fn(im) for im in images]) for name, fn in DESCRIPTIONS.items()}
    methods = {f"{name}/{cost}": change_points(feats, n_segments, cost)
               for name, feats in described.items() for cost in COSTS}
    kept = consensus(list(methods.values()))
    labels = np.searchsorted(np.array(kept), np.arange(len(images)), side="right") + 1
    return {"methods": methods, "boundaries": kept, "labels": labels.tolist()}


def derive_segments(name: str = "cvc-colondb", root: str | os.PathLike | None = None) -> dict:
    """Segments of a video-derived test set from its frames under the data root (ids in natural order)."""
    from polyplib.data.io import natural_key, read_image
    from polyplib.data.registry import find_pairs

    if name not in N_SEQUENCES:
        raise DataError(f"no sequence count is known for dataset {name!r}; segments exist for {sorted(N_SEQUENCES)}")
    pairs = sorted(find_pairs(name, root), key=lambda p: natural_key(p.id))
    result = segment_frames([read_image(p.image_path) for p in pairs], N_SEQUENCES[name])
    return {**result, "ids": [p.id for p in pairs], "dataset": name, "n_sequences": N_SEQUENCES[name]}


def write_table(path: str | os.PathLike, header: list[str], rows) -> Path:
    """A metadata table as CSV, written atomically (`polyplib.atomic`)."""
    from polyplib.atomic import atomic_write

    with atomic_write(path) as handle:
        writer = csv.writer(handle, lineterminator="\r\n")  # the csv module's dialect, as the shipped files have
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


def write_segments(derived: dict, path: str | os.PathLike) -> Path:
    """The id -> segment table of `derive_segments` as CSV."""
    return write_table(path, ["id", "segment"], zip(derived["ids"], derived["labels"]))


def write_duplicates(pairs: list[tuple[str, str, int, float]], path: str | os.PathLike) -> Path:
    """The near-duplicate pairs of `near_duplicates` as CSV (a, b, bits, correlation)."""
    return write_table(path, ["a", "b", "bits", "correlation"], pairs)


@functools.lru_cache(maxsize=None)
def _shipped_rows(filename: str) -> tuple[dict[str, str], ...]:
    """Rows of a metadata table shipped in polyplib/data/metadata/ (read once per process)."""
    text = resources.files("polyplib.data").joinpath("metadata", filename).read_text()
    return tuple(csv.DictReader(text.splitlines()))


def shipped_segments(name: str) -> dict[str, int] | None:
    """The segments shipped with polyplib for a dataset (id -> segment number), None for datasets without them."""
    if name not in SHIPPED:
        return None
    return {row["id"]: int(row["segment"]) for row in _shipped_rows(SHIPPED[name])}


def sequence_folds(ids: list[str], segments: dict[str, int] | None, fold: int,
                   n_folds: int = N_FOLDS) -> dict[str, list[str]]:
    """Transfer split by whole units (segments; each image its own unit when `segments` is None): the units of
    naturally sorted rank `fold` mod `n_folds` are the labelled budget (their last quarter of units validates, the
    rest fine-tunes), every other unit is the test set, so no sequence is shared between the two sides."""
    from polyplib.data.io import natural_key

    if not 0 <= fold < n_folds:
        raise DataError(f"fold {fold} of the sequences split does not exist: choose 0 to {n_folds - 1} (split_seed)")
    ordered = sorted(ids, key=natural_key)
    unknown = [i for i in ordered if segments is not None and i not in segments]
    if unknown:
        raise DataError(f"{len(unknown)} images have no video segment in the shipped table (e.g. {unknown[:3]}): the "
                        "sequences split needs the dataset's original file names")
    unit_of = {i: (segments[i] if segments is not None else i) for i in ordered}
    units = list(dict.fromkeys(unit_of[i] for i in ordered))
    budget = units[fold::n_folds]
    if len(budget) < 2:
        raise DataError(f"the sequences split needs at least {2 * n_folds} units; it found {len(units)}")
    n_val = -(-len(budget) // 4)
    val, fine_tune = set(budget[-n_val:]), set(budget[:-n_val])
    parts = {"train": fine_tune, "val": val, "test": set(units) - set(budget)}
    return {part: [i for i in ordered if unit_of[i] in chosen] for part, chosen in parts.items()}


def shipped_duplicates(name: str) -> list[tuple[str, str]]:
    """The near-duplicate pairs shipped with polyplib for a dataset (empty for datasets without such a list)."""
    if name not in SHIPPED_DUPLICATES:
        return []
    return [(row["a"], row["b"]) for row in _shipped_rows(SHIPPED_DUPLICATES[name])]


def _grey_thumbnail(image) -> np.ndarray:
    grey = np.asarray(image.convert("L").resize((64, 64)), dtype=np.float64).ravel()
    return (grey - grey.mean()) / (grey.std() + 1e-6)


def near_duplicates(paths: dict[str, Path], max_bits: int = DUPLICATE_BITS,
                    min_correlation: float = DUPLICATE_CORRELATION) -> list[tuple[str, str, int, float]]:
    """Pairs of frames with close perceptual hashes (`imagehash.phash`) and correlated grey thumbnails:
    (id a, id b, Hamming bits, correlation)."""
    import imagehash
    from PIL import Image

    ids, bits, thumbs = list(paths), [], []
    for i in ids:
        with Image.open(paths[i]) as handle:
            image = handle.convert("RGB")
        bits.append(imagehash.phash(image).hash.ravel())
        thumbs.append(_grey_thumbnail(image))
    hashes, grey = np.array(bits), np.array(thumbs)
    distance = (hashes[:, None, :] != hashes[None, :, :]).sum(-1)
    correlation = grey @ grey.T / grey.shape[1]
    close = np.triu((distance <= max_bits) & (correlation >= min_correlation), k=1)
    return [(ids[r], ids[c], int(distance[r, c]), round(float(correlation[r, c]), 4)) for r, c in zip(*np.nonzero(close))]


def split_leaks(pairs: list[tuple[str, str, int, float]], split: dict[str, list[str]]) -> list[dict]:
    """Near-duplicate pairs that cross the parts of a split (a test frame with a near copy in training leaks)."""
    where = {i: part for part, ids in split.items() for i in ids}
    return [{"a": a, "b": b, "bits": d, "correlation": c, "parts": f"{where[a]}/{where[b]}"}
            for a, b, d, c in pairs if a in where and b in where and where[a] != where[b]]
