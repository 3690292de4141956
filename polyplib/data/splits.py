"""Splits: GMSRF 80/10/10 (§III-A), PraNet lists, official Kvasir-SEG 880/120, Polyp-SAM 80/20 (§2.4), and
`sequences`: transfer folds by whole video segments (`polyplib.data.frames.sequence_folds`)."""
from __future__ import annotations

import hashlib
import os
import stat
import warnings
from importlib import resources
from pathlib import Path

import numpy as np

from polyplib.data.io import DataWarning, natural_key
from polyplib.data.registry import data_root, dataset_ids, get_spec
from polyplib.errors import ConfigError, DataError

PROTOCOLS = ("gmsrf", "pranet", "kvasir-official", "polyp-sam", "sequences")
DEFAULT_SEEDS = {"gmsrf": 0, "polyp-sam": 42, "sequences": 0}  # sequences: the seed is the fold
ENV_SPLITS = "POLYPLIB_SPLITS"
PRANET_LISTS = {
    "kvasir-seg": {"train": ("pranet_train_Kvasir",), "test": ("pranet_test_Kvasir",)},
    "cvc-clinicdb": {"train": ("pranet_train_CVC-ClinicDB",), "test": ("pranet_test_CVC-ClinicDB",)},
    "cvc-colondb": {"test": ("pranet_test_CVC-ColonDB",)},
    "etis": {"test": ("pranet_test_ETIS-LaribPolypDB",)},
    "cvc-300": {"test": ("pranet_test_CVC-300",)},
    "pranet-train": {"train": ("pranet_train_Kvasir", "pranet_train_CVC-ClinicDB")},
}
KVASIR_OFFICIAL = {"train": ("kvasir_seg_medico2020_train",), "val": ("kvasir_seg_medico2020_val",)}


def shipped_list(stem: str) -> list[str]:
    """Ids of a split list shipped in polyplib/data/splits/<stem>.txt."""
    text = resources.files("polyplib.data").joinpath("splits", f"{stem}.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def _lists(table: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    return {split: [i for stem in stems for i in shipped_list(stem)] for split, stems in table.items()}


def gmsrf_partition(ids: list[str], seed: int) -> dict[str, list[str]]:
    """80/10/10 random partition of naturally sorted ids by numpy's default_rng(seed) (GMSRF §III-A)."""
    ordered = sorted(ids, key=natural_key)
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_train, n_val = round(0.8 * len(ordered)), round(0.1 * len(ordered))
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    return {split: sorted((ordered[i] for i in part), key=natural_key) for split, part in parts.items()}


def polyp_sam_partition(ids: list[str], seed: int) -> dict[str, list[str]]:
    """Polyp-SAM 80/20 train/val: sklearn train_test_split(test_size=0.2, random_state=seed) on file-name order."""
    from sklearn.model_selection import train_test_split

    train, val = train_test_split(sorted(ids), test_size=0.2, random_state=seed)
    return {"train": sorted(train, key=natural_key), "val": sorted(val, key=natural_key)}


def _writable(folder: Path) -> bool:
    """Writable, and not marked read-only by its mode bits (root ignores those, we honour them)."""
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def split_dir(name: str, seed: int, root: str | os.PathLike | None = None) -> Path:
    """Where the GMSRF split files of a dataset live: <root>/polyplib-splits/..., or $POLYPLIB_SPLITS when read-only."""
    base = data_root(root)
    if _writable(base):
        return base / "polyplib-splits" / "gmsrf" / name / f"seed{seed}"
    fallback = Path(os.environ.get(ENV_SPLITS) or "~/.cache/polyplib/splits").expanduser()
    slug = hashlib.sha256(str(base.resolve()).encode()).hexdigest()[:12]
    return fallback / slug / "gmsrf" / name / f"seed{seed}"


def _stored_gmsrf(name: str, ids: list[str], seed: int, root) -> dict[str, list[str]]:
    folder = split_dir(name, seed, root)
    files = {split: folder / f"{split}.txt" for split in ("train", "val", "test")}
    if not all(path.is_file() for path in files.values()):
        split = gmsrf_partition(ids, seed)
        folder.mkdir(parents=True, exist_ok=True)
        for key, path in files.items():
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(f"{i}\n" for i in split[key]))
            os.replace(tmp, path)
        return split
    split = {key: path.read_text().split() for key, path in files.items()}
    listed = {i for part in split.values() for i in part}
    missing, extra = sorted(listed - set(ids), key=natural_key), sorted(set(ids) - listed, key=natural_key)
    if missing:
        raise DataError(f"split files in {folder} list {len(missing)} ids absent from {name} (e.g. {missing[:3]}); "
                        f"restore the files or delete {folder} to draw a new split")
    if extra:
        warnings.warn(f"{name}: {len(extra)} pairs are in no split of {folder} (e.g. {extra[:3]}); they are not used",
                      DataWarning, stacklevel=3)
    return split


def get_split(name: str, protocol: str, root: str | os.PathLike | None = None, seed: int | None = None, *,
              ids: list[str] | None = None, **options) -> dict[str, list[str]]:
    """Ids per split of `name` under `protocol` (seed None: protocol default, gmsrf 0, polyp-sam 42; under
    `sequences` the seed is the fold)."""
    get_spec(name)
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown split protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if protocol == "pranet":
        if name not in PRANET_LISTS:
            raise ConfigError(f"the pranet protocol has no lists for {name!r}; it covers {', '.join(PRANET_LISTS)}")
        return _lists(PRANET_LISTS[name])
    if protocol == "kvasir-official":
        if name != "kvasir-seg":
            raise ConfigError(f"the kvasir-official split exists only for kvasir-seg, not {name!r}")
        return _lists(KVASIR_OFFICIAL)
    seed = DEFAULT_SEEDS[protocol] if seed is None else seed
    if ids is None:
        ids = dataset_ids(name, root, **options)
    if protocol == "polyp-sam":
        return polyp_sam_partition(ids, seed)
    if protocol == "sequences":
        from polyplib.data.frames import sequence_folds, shipped_segments

        return sequence_folds(ids, shipped_segments(name), seed)
    if name == "synthpolyp":
        return gmsrf_partition(ids, seed)
    return _stored_gmsrf(name, ids, seed, root)
