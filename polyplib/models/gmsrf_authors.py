"""The authors' GMSRF-Net weights by name (NoviceMAn-prog/GMSRFNet model.py `EncoderBlock`) and their four outputs."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from polyplib.errors import WeightsError
from polyplib.models.gmsrf import GMSRFNet

SCALES = "xyvw"  # the authors' names of scales 1..4 (H, H/2, H/4, H/8)
MODULES = ("msrfv21", "msrfv23")  # the two modules forward() calls (msrfv22 is built but never used)
RFBS = ("conv_red", "rfb2_1", "rfb3_1", "rfb4_1")
DECODER = {"up.0": "u1", "up.1": "u3", "up.2": "u4", "select.0": "level2_selection",
           "select.1": "level3_selection", "head.0": "final_1", "head.1": "final_2",
           "side.0": "dsv2", "side.1": "dsv4", "side.2": "dsv8"}


def _basic(rest: str) -> str:
    """Our BasicConv2d (Sequential 0=conv, 1=bn) -> the authors' BasicConv2d (.conv, .bn)."""
    return re.sub(r"^(\d)\.", lambda m: ("conv." if m.group(1) == "0" else "bn."), rest)


def _module_key(m: int, rest: str) -> str:
    """A key inside our GMSRFModule -> the authors' `exchange` member (x1, x2_input, att_y1, v1_w1.conv2, ...)."""
    if (hit := re.match(r"first\.(\d)\.(.*)", rest)):
        return f"{MODULES[m]}.{SCALES[int(hit[1])]}1.{_basic(hit[2])}"
    if (hit := re.match(r"resamplers\.(\d)\.(\d)_(\d)\.(\d)\.weight", rest)):
        layer, src, dst, index = int(hit[1]) + 1, int(hit[2]), int(hit[3]), int(hit[4]) // 2
        conv = "conv" if abs(src - dst) == 1 else f"conv{index + 1}"
        return f"{MODULES[m]}.{SCALES[dst]}{layer}_{SCALES[src]}{layer}.{conv}.weight"
    hit = re.match(r"layers\.(\d)\.(\d)\.(\w+)\.(.*)", rest)
    if hit is None:
        raise WeightsError(f"no authors' name for GMSRF module key {rest!r}")
    layer, name, part, tail = int(hit[1]) + 2, SCALES[int(hit[2])], hit[3], hit[4]
    if part == "fuse":
        return f"{MODULES[m]}.{name}{layer}_input.{_basic(tail)}"
    if part == "cmsa":
        return f"{MODULES[m]}.att_{name}{layer - 1}.{ {'conv3': 'conv1', 'conv1': 'conv2'}[tail.split('.')[0]]}.weight"
    if part == "msfs":
        return f"{MODULES[m]}.{name}{layer}_se.{tail}"
    return f"{MODULES[m]}.{name}{layer}.{_basic(tail)}"


def authors_key(key: str) -> str:
    """Our state-dict key of `gmsrf(variant="official")` -> the key of the same tensor in the authors' state dict."""
    head, _, rest = key.partition(".")
    if head == "encoder":
        if rest.startswith("stem."):
            return "conv1." + _basic(rest[len("stem."):])
        stage, _, tail = rest[len("stages."):].partition(".")
        return f"resnet.layer{int(stage) + 1}.{tail}"
    if head == "reducers":
        index, _, tail = rest.partition(".")
        if index == "0":
            return f"conv_red.{_basic(tail)}"
        tail = re.sub(r"^branches\.0\.", "branch0.0.", tail)
        tail = re.sub(r"^branches\.(\d)\.", r"branch\1.", tail)
        parts = tail.split(".")
        if parts[0] in ("conv_cat", "conv_res"):
            return f"{RFBS[int(index)]}.{parts[0]}.{_basic('.'.join(parts[1:]))}"
        return f"{RFBS[int(index)]}.{parts[0]}.{parts[1]}.{_basic('.'.join(parts[2:]))}"
    if head == "gmsrf":
        module, _, tail = rest.partition(".")
        return _module_key(int(module), tail)
    if head == "decoder":
        group, index, tail = rest.split(".", 2)
        name = DECODER[f"{group}.{index}"]
        return f"{name}.{_basic(tail)}" if group == "head" else f"{name}.{tail}"
    raise WeightsError(f"no authors' name for key {key!r}")


def load_authors_state_dict(model: GMSRFNet, state: dict[str, torch.Tensor] | str | Path) -> list[str]:
    """Load an authors' GMSRF-Net state dict (or .pth file) into `gmsrf(variant="official")` by name.

    Returns the authors' keys that have no counterpart: members their forward() never uses (the Res2Net stem and fc,
    en1-4/se1-4, msrfv22, the BatchNorms declared in the x4/x8 resampling blocks). A missing key or a shape that
    does not fit (another width, fusion or number of modules) is a WeightsError naming it.
    """
    if not isinstance(state, dict):
        state = torch.load(state, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel copies
    ours = model.state_dict()
    mapped = {}
    for key, tensor in ours.items():
        theirs = authors_key(key)
        if theirs not in state:
            raise WeightsError(f"the authors' state dict has no {theirs!r} (for {key}); is it a GMSRF-Net "
                               f"EncoderBlock state dict of NoviceMAn-prog/GMSRFNet?")
        if tuple(state[theirs].shape) != tuple(tensor.shape):
            raise WeightsError(f"{theirs!r} has shape {tuple(state[theirs].shape)}, {key} needs {tuple(tensor.shape)}: "
                               f"build gmsrf(variant='official') with width=1, fusion='code', num_modules=2")
        mapped[key] = state[theirs]
    model.load_state_dict(mapped)
    used = {authors_key(k) for k in ours}
    return sorted(k for k in state if k not in used)


def authors_outputs(model: GMSRFNet, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """What the authors' forward returns: (sigmoid(D1), D2, D3, D4), D2-D4 logits at input size (model.py:757-796)."""
    if not model.deep_supervision:
        raise WeightsError("authors_outputs needs deep_supervision=True (the authors' model returns four maps)")
    main, *sides = model.outputs(image)
    return (torch.sigmoid(main), *sides)
