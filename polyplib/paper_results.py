"""Published numbers of the two papers, typed in as data (with their citation) for side-by-side tables."""
from __future__ import annotations

import pandas as pd

from polyplib.errors import ConfigError

GMSRF_CITATION = "Srivastava et al., GMSRF-Net, ICPR 2022 (arXiv:2111.10614)"
POLYP_SAM_CITATION = "Li, Hu, Yang, Polyp-SAM, arXiv:2305.00293 (2023)"

_GMSRF_METHODS = (
    "U-Net", "U-Net++", "DeepLabv3+ (Xception)", "DeepLabv3+ (MobileNet)", "HRNetV2-W18-Smallv2", "HRNetV2-W48",
    "ColonSegNet", "PraNet", "UACANet-S", "UACANet-L", "MSRF-Net", "GMSRF-Net",
)
# One row per method (order of _GMSRF_METHODS): DSC, mIoU, recall, precision on the source test split,
# then the same four on the unseen dataset.
_GMSRF_TABLE_I = (  # source Kvasir-SEG, unseen CVC-ClinicDB
    (0.8629, 0.8176, 0.9094, 0.8901, 0.7172, 0.6133, 0.7255, 0.7986),
    (0.7475, 0.6313, 0.6865, 0.8871, 0.4265, 0.3345, 0.3939, 0.6894),
    (0.8965, 0.8575, 0.8984, 0.9496, 0.6509, 0.5385, 0.6251, 0.7947),
    (0.8656, 0.8186, 0.8808, 0.9205, 0.6303, 0.4825, 0.5957, 0.7173),
    (0.8179, 0.7470, 0.8016, 0.8696, 0.6428, 0.5513, 0.6811, 0.7253),
    (0.8896, 0.8262, 0.8973, 0.9056, 0.7901, 0.6953, 0.8796, 0.7694),
    (0.8203, 0.7435, 0.8124, 0.8832, 0.6895, 0.5813, 0.7862, 0.7177),
    (0.9078, 0.8561, 0.9034, 0.9352, 0.7225, 0.6328, 0.7531, 0.7888),
    (0.8800, 0.8250, 0.8701, 0.9229, 0.5683, 0.4907, 0.5792, 0.7095),
    (0.9014, 0.8555, 0.8897, 0.9381, 0.5589, 0.4849, 0.5800, 0.6775),
    (0.9217, 0.8914, 0.9198, 0.9666, 0.7921, 0.6498, 0.9001, 0.7000),
    (0.9263, 0.8843, 0.9402, 0.9310, 0.8755, 0.8091, 0.9106, 0.8588),
)
_GMSRF_TABLE_II = (  # source CVC-ClinicDB, unseen Kvasir-SEG
    (0.9145, 0.8654, 0.9178, 0.9381, 0.6222, 0.4588, 0.5129, 0.8133),
    (0.8453, 0.7559, 0.8917, 0.8323, 0.5926, 0.4564, 0.7352, 0.5462),
    (0.8897, 0.8706, 0.9251, 0.9366, 0.6746, 0.5327, 0.7757, 0.6296),
    (0.8985, 0.8588, 0.9160, 0.9287, 0.6474, 0.5098, 0.6632, 0.6878),
    (0.9073, 0.8457, 0.9137, 0.9191, 0.7012, 0.6009, 0.7184, 0.7666),
    (0.9244, 0.8747, 0.9234, 0.9296, 0.7404, 0.6233, 0.7293, 0.8511),
    (0.9132, 0.8600, 0.9072, 0.9292, 0.6324, 0.5183, 0.6112, 0.7897),
    (0.9072, 0.8575, 0.9227, 0.9134, 0.7293, 0.6262, 0.8007, 0.7623),
    (0.9190, 0.8700, 0.9285, 0.9201, 0.6945, 0.5894, 0.7692, 0.7377),
    (0.9098, 0.8649, 0.9174, 0.9114, 0.7312, 0.6383, 0.7417, 0.8314),
    (0.9420, 0.9043, 0.9567, 0.9427, 0.7575, 0.6337, 0.7197, 0.8414),
    (0.9326, 0.8882, 0.9376, 0.9307, 0.8606, 0.7877, 0.8641, 0.9056),
)

_SAM_DATASETS = ("Kvasir", "CVC-ClinicDB", "CVC-ColonDB", "CVC-300", "ETIS")
# Table 1: Polyp-SAM-B, per dataset: DSC (decoder-only, full), mIoU (decoder-only, full).
_POLYP_SAM_TABLE_1 = (
    (0.882, 0.902, 0.835, 0.863),
    (0.890, 0.921, 0.837, 0.877),
    (0.891, 0.894, 0.835, 0.843),
    (0.924, 0.924, 0.882, 0.883),
    (0.885, 0.903, 0.834, 0.852),
)
# Table 2: per method, (DSC, mIoU) for each dataset in _SAM_DATASETS order.
_POLYP_SAM_TABLE_2 = {
    "U-Net": (0.818, 0.746, 0.823, 0.755, 0.504, 0.436, 0.710, 0.627, 0.398, 0.335),
    "U-Net++": (0.821, 0.744, 0.794, 0.729, 0.482, 0.408, 0.707, 0.624, 0.401, 0.344),
    "DCRNet": (0.886, 0.825, 0.896, 0.844, 0.704, 0.631, 0.856, 0.788, 0.556, 0.496),
    "C2FNet": (0.886, 0.831, 0.919, 0.872, 0.724, 0.650, 0.874, 0.801, 0.699, 0.624),
    "LDNet": (0.887, 0.821, 0.881, 0.825, 0.740, 0.652, 0.869, 0.793, 0.645, 0.551),
    "Polyp-PVT": (0.917, 0.864, 0.948, 0.905, 0.808, 0.727, 0.900, 0.833, 0.787, 0.706),
    "HSNet": (0.926, 0.877, 0.937, 0.887, 0.810, 0.735, 0.903, 0.839, 0.808, 0.734),
    "Polyp-SAM-B": (0.902, 0.863, 0.921, 0.877, 0.894, 0.843, 0.924, 0.882, 0.903, 0.852),
    "Polyp-SAM-L": (0.901, 0.864, 0.917, 0.874, 0.889, 0.838, 0.929, 0.889, 0.905, 0.860),
}
# Table 3: trained on Kvasir + CVC-ClinicDB (80/20), tested on the held-out CVC-ColonDB: (DSC, mIoU).
_POLYP_SAM_TABLE_3 = {
    "U-Net": (0.504, 0.436), "U-Net++": (0.482, 0.408), "DCRNet": (0.704, 0.631), "C2FNet": (0.724, 0.650),
    "LDNet": (0.740, 0.652), "Polyp-PVT": (0.808, 0.727), "HSNet": (0.810, 0.735),
    "Polyp-SAM-B": (0.906, 0.855), "Polyp-SAM-L": (0.881, 0.825),
}

_METRICS = ("dsc", "miou", "recall", "precision")


def _gmsrf(rows: tuple, source: str, unseen: str, table: str) -> pd.DataFrame:
    """GMSRF-Net Tables I/II as long rows: method, source, test dataset, split kind and the four metrics."""
    records = []
    for method, values in zip(_GMSRF_METHODS, rows, strict=True):
        for kind, test, part in (("source", source, values[:4]), ("unseen", unseen, values[4:])):
            records.append({"method": method, "train": source, "test": test, "kind": kind, **dict(zip(_METRICS, part))})
    return _cite(pd.DataFrame.from_records(records), table, GMSRF_CITATION)


def _polyp_sam_table_1() -> pd.DataFrame:
    """Polyp-SAM Table 1: decoder-only vs full fine-tuning of Polyp-SAM-B (Sec. 3.1)."""
    records = []
    for dataset, (d_dec, d_full, i_dec, i_full) in zip(_SAM_DATASETS, _POLYP_SAM_TABLE_1, strict=True):
        records.append({"strategy": "decoder", "test": dataset, "dsc": d_dec, "miou": i_dec})
        records.append({"strategy": "full", "test": dataset, "dsc": d_full, "miou": i_full})
    return _cite(pd.DataFrame.from_records(records), "Polyp-SAM Table 1", POLYP_SAM_CITATION)


def _polyp_sam_table_2() -> pd.DataFrame:
    """Polyp-SAM Table 2: PraNet split, five test datasets (Sec. 3.2)."""
    records = [
        {"method": method, "test": dataset, "dsc": values[2 * i], "miou": values[2 * i + 1]}
        for method, values in _POLYP_SAM_TABLE_2.items()
        for i, dataset in enumerate(_SAM_DATASETS)
    ]
    return _cite(pd.DataFrame.from_records(records), "Polyp-SAM Table 2", POLYP_SAM_CITATION)


def _polyp_sam_table_3() -> pd.DataFrame:
    """Polyp-SAM Table 3: trained on Kvasir + CVC-ClinicDB, tested on held-out CVC-ColonDB (Sec. 3.2)."""
    records = [{"method": m, "test": "CVC-ColonDB", "dsc": d, "miou": i} for m, (d, i) in _POLYP_SAM_TABLE_3.items()]
    return _cite(pd.DataFrame.from_records(records), "Polyp-SAM Table 3", POLYP_SAM_CITATION)


def _cite(frame: pd.DataFrame, table: str, citation: str) -> pd.DataFrame:
    """Attach the table name and its citation to the frame (kept in `frame.attrs`)."""
    frame.attrs.update(table=table, citation=citation)
    return frame


_TABLES = {
    "gmsrf-table-1": lambda: _gmsrf(_GMSRF_TABLE_I, "Kvasir-SEG", "CVC-ClinicDB", "GMSRF-Net Table I"),
    "gmsrf-table-2": lambda: _gmsrf(_GMSRF_TABLE_II, "CVC-ClinicDB", "Kvasir-SEG", "GMSRF-Net Table II"),
    "polyp-sam-table-1": _polyp_sam_table_1,
    "polyp-sam-table-2": _polyp_sam_table_2,
    "polyp-sam-table-3": _polyp_sam_table_3,
}


def list_paper_tables() -> list[str]:
    """Names accepted by `paper_table`."""
    return sorted(_TABLES)


def paper_table(name: str) -> pd.DataFrame:
    """A published table as a long DataFrame; `frame.attrs` holds `table` and `citation`."""
    if name not in _TABLES:
        raise ConfigError(f"unknown paper table {name!r}; choose one of {list_paper_tables()}")
    return _TABLES[name]()
