"""Dataset helpers of the book: dataset keys, loading, split sizes, overviews and statistics."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from polyplib.campaigns.profiles import BookProfile
from polyplib.campaigns.profiles import dataset_key
from polyplib.errors import ConfigError


def load(settings: BookProfile, key: str, split: str | None = None, *, image_size: int | None | str = "profile",
         protocol: str = "gmsrf", **options: Any):
    """A dataset of the book by key, at the profile's image size (`image_size=None`: original resolution)."""
    from polyplib.data import load_dataset

    name, synth = dataset_key(key, settings)
    size = settings.image_size if image_size == "profile" else image_size
    return load_dataset(name, settings.data_root, split, image_size=size, protocol=protocol, **synth, **options)


def split_sizes(settings: BookProfile, keys: tuple[str, ...] | None = None,
                protocols: tuple[str, ...] = ("gmsrf", "pranet", "kvasir-official", "polyp-sam")) -> pd.DataFrame:
    """Images per split for every dataset and every protocol that applies to it (one row per dataset and protocol)."""
    from polyplib.data import get_split
    from polyplib.errors import PolypError

    rows = []
    for key in keys or tuple(dict.fromkeys((*settings.test_sets, settings.sam_train))):
        name, synth = dataset_key(key, settings)
        for protocol in protocols:
            try:
                table = get_split(name, protocol, settings.data_root, **synth)
            except ConfigError:
                continue  # the protocol does not cover this dataset
            except PolypError as err:
                rows.append({"dataset": key, "protocol": protocol, "note": str(err).split(";")[0]})
                continue
            rows.append({"dataset": key, "protocol": protocol, **{s: len(ids) for s, ids in table.items()}})
    frame = pd.DataFrame(rows)
    frame = frame.reindex(columns=[c for c in ("dataset", "protocol", "train", "val", "test", "note") if c in frame])
    counts = [c for c in ("train", "val", "test") if c in frame]
    frame[counts] = frame[counts].astype("Int64")
    return frame


def dataset_overview(settings: BookProfile) -> pd.DataFrame:
    """The registered datasets with their description; the `full` profile adds the pairs found under the data root."""
    from polyplib.data import DATASETS, list_datasets

    frame = pd.DataFrame([{"dataset": name, "description": spec.description} for name, spec in DATASETS.items()])
    if settings.name == "full":
        found = {row["name"]: row["pairs"] for row in list_datasets(settings.data_root)}
        frame["pairs found"] = frame["dataset"].map(found)
    return frame


def samples(settings: BookProfile, key: str, n: int | None = None, **load_options: Any) -> list[dict[str, Any]]:
    """The first `n` (default: the profile's `n_examples`) items of a dataset, for example grids."""
    dataset = load(settings, key, **load_options)
    return [dataset[i] for i in range(min(n or settings.n_examples, len(dataset)))]


def dataset_statistics(dataset: Any, limit: int | None = None) -> pd.DataFrame:
    """Per image: size, polyp area fraction, polyp count, box size, colour and polyp/background contrast."""
    import cv2
    import torch

    from polyplib.data import mask_to_box

    rows = []
    for i in range(len(dataset) if limit is None else min(limit, len(dataset))):
        item = dataset[i]
        image, mask = item["image"], item["mask"][0] > 0.5
        h, w = mask.shape
        n_polyps = cv2.connectedComponents(mask.numpy().astype(np.uint8))[0] - 1
        box = mask_to_box(mask.numpy())
        grey = image.mean(0)
        inside = grey[mask].mean().item() if mask.any() else float("nan")
        outside = grey[~mask].mean().item() if (~mask).any() else float("nan")
        rgb = image.reshape(3, -1).mean(1)
        rows.append({
            "id": item["id"], "dataset": item["dataset"], "height": h, "width": w,
            "area_fraction": mask.float().mean().item(), "polyps": n_polyps,
            "box_fraction": 0.0 if box is None else float((box[2] - box[0]) * (box[3] - box[1])) / (h * w),
            "red": rgb[0].item(), "green": rgb[1].item(), "blue": rgb[2].item(),
            "brightness": grey.mean().item(), "contrast": inside - outside,
            "sharpness": float(torch.diff(grey, dim=1).abs().mean()),
        })
    return pd.DataFrame(rows)
