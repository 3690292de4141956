"""Dataset registry: where each public polyp dataset lives under one data root, in its real layouts (notes §4)."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from polyplib.data.io import IMAGE_EXTENSIONS, Pair, pair_files
from polyplib.data.synth import DEFAULT_N, synth_ids
from polyplib.errors import ConfigError, DataError

ENV_ROOT = "POLYPLIB_DATA"
DEFAULT_ROOT = Path("~/.cache/polyplib/data")
PRANET_LAYOUTS = (("images", "masks"), ("image", "masks"))
SYNTH_OPTIONS = {"n": DEFAULT_N, "centre": "A", "synth_seed": 0}


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: candidate folders under the root (first found wins) and (images, masks) sub-folder layouts."""

    name: str
    folders: tuple[str, ...]
    layouts: tuple[tuple[str, str], ...] = PRANET_LAYOUTS
    archive: str | None = None  # key of polyplib.data.download.ARCHIVES that provides it
    mask_prefix: str = ""  # mask files named <prefix><id> (original ETIS ground truth: p1.tif for 1.tif)
    description: str = ""


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset to the registry (name must be new)."""
    if spec.name in DATASETS:
        raise ConfigError(f"dataset {spec.name!r} is already registered")
    DATASETS[spec.name] = spec
    return spec


def get_spec(name: str) -> DatasetSpec:
    """The registered spec of `name`, or an error listing the known names."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: argument, else $POLYPLIB_DATA, else ~/.cache/polyplib/data."""
    return Path(root if root is not None else os.environ.get(ENV_ROOT) or DEFAULT_ROOT).expanduser()


def locate(name: str, root: str | os.PathLike | None = None) -> tuple[Path, Path, Path]:
    """(dataset folder, images folder, masks folder) of an on-disk dataset, or an error saying where we looked."""
    spec, base = get_spec(name), data_root(root)
    if not spec.folders:
        raise ConfigError(f"dataset {name!r} is generated in memory and has no folder")
    for folder in spec.folders:
        for images, masks in spec.layouts:
            candidate = base / folder
            if (candidate / images).is_dir() and (candidate / masks).is_dir():
                return candidate, candidate / images, candidate / masks
    origin = "--root" if root is not None else f"${ENV_ROOT}" if os.environ.get(ENV_ROOT) else "default root"
    hint = (f"run `polyplib datasets download {name} --root DIR` (polyplib.data.download in Python)" if spec.archive
            else "copy it there by hand (no public download)")
    advice = f"Pass --root DIR (root= in Python), set ${ENV_ROOT}, or {hint}."
    if not base.is_dir():
        raise DataError(f"dataset {name!r}: the data root {base} ({origin}) does not exist. {advice}")
    layouts = " or ".join(f"{{{images},{masks}}}" for images, masks in spec.layouts)
    raise DataError(f"dataset {name!r} not found under {base} ({origin}); looked for "
                    f"{', '.join(str(base / folder) for folder in spec.folders)} holding {layouts}.\n{advice}")


def find_pairs(name: str, root: str | os.PathLike | None = None) -> list[Pair]:
    """Every image/mask pair of an on-disk dataset, paired by file stem, natural order."""
    folder, images, masks = locate(name, root)
    pairs = pair_files(images, masks, source=f"{name} ({folder})", mask_prefix=get_spec(name).mask_prefix)
    if not pairs:
        raise DataError(f"dataset {name!r}: no image/mask pairs in {images} and {masks} "
                        f"(extensions {', '.join(IMAGE_EXTENSIONS)})")
    return pairs


def synth_options(name: str, options: dict) -> dict:
    """Validated dataset-specific options: synthpolyp takes n, centre, synth_seed; disk datasets take none."""
    unknown = set(options) - (set(SYNTH_OPTIONS) if name == "synthpolyp" else set())
    if unknown:
        allowed = ", ".join(SYNTH_OPTIONS) if name == "synthpolyp" else "none beyond the documented keywords"
        raise ConfigError(f"unknown option(s) {sorted(unknown)} for dataset {name!r}; dataset options: {allowed}")
    return {**SYNTH_OPTIONS, **options} if name == "synthpolyp" else {}


def dataset_ids(name: str, root: str | os.PathLike | None = None, **options) -> list[str]:
    """Every id of a dataset (files found on disk, or the synthpolyp frames selected by n/centre)."""
    synth = synth_options(name, options)
    if name == "synthpolyp":
        return synth_ids(synth["n"], synth["centre"])
    return [pair.id for pair in find_pairs(name, root)]


def list_datasets(root: str | os.PathLike | None = None) -> list[dict]:
    """Every registered dataset with `name`, `pairs` (0 when absent), `path` (None when absent) and `present`."""
    rows = []
    for name, spec in DATASETS.items():
        if not spec.folders:
            rows.append({"name": name, "pairs": DEFAULT_N, "path": None, "present": True})
            continue
        try:
            folder, images, masks = locate(name, root)
        except DataError:
            rows.append({"name": name, "pairs": 0, "path": None, "present": False})
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            count = len(pair_files(images, masks, source=name, mask_prefix=spec.mask_prefix))
        rows.append({"name": name, "pairs": count, "path": str(folder), "present": count > 0})
    return rows


for _spec in (
    DatasetSpec("kvasir-seg", ("Kvasir-SEG", "kvasir-seg", "TestDataset/Kvasir"), archive="kvasir-seg",
                description="Kvasir-SEG, 1000 JPEG pairs (official zip layout images/, masks/, kavsir_bboxes.json)"),
    DatasetSpec("cvc-clinicdb", ("CVC-ClinicDB", "TestDataset/CVC-ClinicDB"),
                (("Original", "Ground Truth"), ("PNG/Original", "PNG/Ground Truth")) + PRANET_LAYOUTS,
                archive="pranet-test", description="CVC-ClinicDB, 612 TIFF pairs (PraNet test subset: 62)"),
    DatasetSpec("cvc-colondb", ("CVC-ColonDB", "TestDataset/CVC-ColonDB"), archive="pranet-test",
                description="CVC-ColonDB, 380 pairs (PraNet TestDataset)"),
    DatasetSpec("etis", ("ETIS-LaribPolypDB", "TestDataset/ETIS-LaribPolypDB"),
                PRANET_LAYOUTS + (("ETIS-LaribPolypDB", "gt"), ("ETIS-LaribPolypDB", "Ground Truth")),
                archive="pranet-test", mask_prefix="p",
                description="ETIS-LaribPolypDB, 196 pairs (PraNet TestDataset; original layout with gt/)"),
    DatasetSpec("cvc-300", ("CVC-300", "TestDataset/CVC-300"), archive="pranet-test",
                description="CVC-300 (EndoScene test), 60 pairs (PraNet TestDataset)"),
    DatasetSpec("pranet-train", ("TrainDataset",), archive="pranet-train",
                description="PraNet TrainDataset: 900 Kvasir + 550 CVC-ClinicDB (Polyp-SAM trains on it)"),
    DatasetSpec("synthpolyp", (), description="synthetic colonoscopy frames, centres A/B, generated from a seed"),
):
    register_dataset(_spec)
