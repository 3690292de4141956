"""polyplib.data: polyp datasets (notes §4) — registry and layouts, splits, download, synthpolyp, transforms, boxes."""
from polyplib.data.boxes import jitter_box, mask_to_box, mask_to_boxes
from polyplib.data.cache import prepare_cache
from polyplib.data.dataset import PolypDataset, load_dataset
from polyplib.data.download import ARCHIVES, download
from polyplib.data.io import DataWarning, Pair, binarize_mask, read_image, read_mask
from polyplib.data.registry import (DATASETS, DatasetSpec, data_root, dataset_ids, find_pairs, list_datasets, locate,
                                    register_dataset)
from polyplib.data.splits import PROTOCOLS, get_split
from polyplib.data.synth import CENTRES, synth_frame

__all__ = [
    "ARCHIVES", "CENTRES", "DATASETS", "DataWarning", "DatasetSpec", "PROTOCOLS", "Pair", "PolypDataset",
    "binarize_mask", "data_root", "dataset_ids", "download", "find_pairs", "get_split", "jitter_box", "list_datasets",
    "load_dataset", "locate", "mask_to_box", "mask_to_boxes", "prepare_cache", "read_image", "read_mask",
    "register_dataset", "synth_frame",
]
