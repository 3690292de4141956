"""SHA-256 of every decoded image and binarised mask of datasets as polyplib reads them at one image size (no
augmentation), one line per dataset: two data roots (or two machines' image decoders) that print the same lines give
the same samples. Usage: python benchmarks/data_digest.py ROOT NAME[:SIZE] ... (SIZE: pixels; none: as stored)"""
from __future__ import annotations

import hashlib
import sys

from polyplib.data import load_dataset


def digest(root: str, name: str, image_size: int | None) -> str:
    """Hex digest over (id, image bytes, mask bytes) of every sample, in the dataset's order."""
    dataset, sha = load_dataset(name, root, image_size=image_size), hashlib.sha256()
    for index in range(len(dataset)):
        sample = dataset[index]
        sha.update(sample["id"].encode())
        sha.update(sample["image"].numpy().tobytes())
        sha.update(sample["mask"].numpy().tobytes())
    return f"{name} {image_size or 'stored'} {len(dataset)} {sha.hexdigest()}"


if __name__ == "__main__":
    root, *names = sys.argv[1:]
    for item in names:
        name, _, size = item.partition(":")
        print(digest(root, name, int(size) if size and size != "none" else None))
