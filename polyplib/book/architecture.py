"""GMSRF-Net architecture views: forward trace with hooks and per-block parameters and GFLOPs."""
from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from polyplib.errors import ConfigError


@dataclasses.dataclass
class GMSRFTrace:
    """What one GMSRF-Net forward pass computed: stage shapes, feature maps, CMSA maps and MSFS gates."""

    shapes: pd.DataFrame  # stage, scale, channels, height, width
    features: dict[str, list[Any]]  # stage -> one [C, h, w] tensor per scale
    cmsa: dict[tuple[int, int, int], Any]  # (module, layer, scale) -> [h, w] gate in [1, 2] (GMSRF Eq. 1)
    msfs: dict[tuple[int, int, int], Any]  # (module, layer, scale) -> [C] channel weights in [0, 1] (Sec. II-B.2)


def trace_gmsrf(model: Any, image: Any) -> GMSRFTrace:
    """Run one image through GMSRF-Net with forward hooks on the encoder, RFBs, GMSRF modules, CMSA and MSFS."""
    import torch

    if not hasattr(model, "gmsrf") or not hasattr(model, "reducers"):
        raise ConfigError(f"trace_gmsrf needs a GMSRF-Net (create_model('gmsrf')), got {type(model).__name__}")
    stages: dict[str, list[Any]] = {}
    cmsa: dict[tuple[int, int, int], Any] = {}
    msfs: dict[tuple[int, int, int], Any] = {}
    hooks = [model.encoder.register_forward_hook(lambda m, i, o: stages.__setitem__("encoder", list(o)))]
    for s, reducer in enumerate(model.reducers):
        hooks.append(reducer.register_forward_hook(lambda m, i, o, s=s: stages.setdefault("rfb", [None] * 4).__setitem__(s, o)))
    for k, module in enumerate(model.gmsrf):
        hooks.append(module.register_forward_hook(lambda m, i, o, k=k: stages.__setitem__(f"gmsrf module {k + 1}", list(o))))
        for layer, per_scale in enumerate(module.layers, start=2):
            for s, fusion in enumerate(per_scale):
                key = (k + 1, layer, s + 1)
                if fusion.cmsa is not None:
                    hooks.append(fusion.cmsa.register_forward_hook(lambda m, i, o, key=key: cmsa.__setitem__(key, o[0, 0])))
                if hasattr(fusion.msfs, "fc"):
                    hooks.append(fusion.msfs.fc.register_forward_hook(
                        lambda m, i, o, key=key: msfs.__setitem__(key, torch.sigmoid(o[0]))))
    try:
        with torch.no_grad():
            logits = model.eval()(image[None] if image.ndim == 3 else image)
    finally:
        for hook in hooks:
            hook.remove()
    stages["output (logits)"] = [logits]
    features = {name: [t[0].detach() for t in tensors] for name, tensors in stages.items()}
    shapes = pd.DataFrame([{"stage": name, "scale": s + 1, "channels": t.shape[0], "height": t.shape[1], "width": t.shape[2]}
                           for name, tensors in features.items() for s, t in enumerate(tensors)])
    return GMSRFTrace(shapes, features, {k: v.detach() for k, v in cmsa.items()}, {k: v.detach() for k, v in msfs.items()})


def block_costs(model: Any, image_size: int) -> pd.DataFrame:
    """Parameters (millions) and GFLOPs of one batch-1 forward per top-level block (shapes only, on `meta`)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    work = copy_to_meta(model).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        work(torch.zeros(1, 3, image_size, image_size, device="meta"))
    flops = {name: sum(counts.values()) for name, counts in counter.get_flop_counts().items()}
    prefix = type(work).__name__
    rows = []
    for name, child in model.named_children():
        blocks = list(child.named_children()) if isinstance(child, torch.nn.ModuleList) else [("", child)]
        for sub, block in blocks:
            label = f"{name}.{sub}" if sub else name
            rows.append({"block": label, "params (M)": sum(p.numel() for p in block.parameters()) / 1e6,
                         "GFLOPs": flops.get(f"{prefix}.{label}", 0) / 1e9})
    rows.append({"block": "total", "params (M)": sum(p.numel() for p in model.parameters()) / 1e6,
                 "GFLOPs": flops.get("Global", 0) / 1e9})
    return pd.DataFrame(rows)


def compare_variants(image_size: int = 256, variants: tuple[str, ...] = ("paper", "official")) -> pd.DataFrame:
    """GMSRF-Net `paper` vs `official`: backbone, scale resolutions, parameters and GFLOPs at `image_size`."""
    import torch

    from polyplib.models import create_model
    from polyplib.models.gmsrf import VARIANTS

    rows = []
    for variant in variants:
        with torch.device("meta"):  # shapes only: no weight initialisation cost
            model = create_model("gmsrf", variant=variant)
        trace = trace_gmsrf(model, torch.zeros(3, image_size, image_size, device="meta"))
        rfb = trace.shapes[trace.shapes.stage == "rfb"]
        costs = block_costs(model, image_size).set_index("block")
        rows.append({"variant": variant, "backbone": VARIANTS[variant]["backbone"],
                     "scales (px)": " / ".join(f"{h}" for h in rfb.height), "side outputs": VARIANTS[variant]["upsample"],
                     "params (M)": costs.loc["total", "params (M)"], f"GFLOPs @{image_size}": costs.loc["total", "GFLOPs"]})
    return pd.DataFrame(rows)


def copy_to_meta(model: Any) -> Any:
    """A shapes-only copy of a model on the `meta` device (no memory, no compute; no weights are copied)."""
    from polyplib.models.registry import _copy

    return _copy(model, "meta")


def variant_costs(settings: Any) -> pd.DataFrame:
    """Parameters and GFLOPs of the full GMSRF-Net and of each ablation of the profile, at its image size."""
    import torch

    from polyplib.campaigns.declared import ABLATIONS, model_options
    from polyplib.models import create_model

    rows = []
    for label, spec in {"GMSRF-Net": {}, **ABLATIONS}.items():
        with torch.device("meta"):
            model = create_model("gmsrf", **model_options(settings, "gmsrf", **spec.get("options", {})))
        total = block_costs(model, settings.image_size).set_index("block").loc["total"]
        rows.append({"variant": label, **total.to_dict()})
    return pd.DataFrame(rows)
