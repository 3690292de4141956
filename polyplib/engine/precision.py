"""The precision policy: which autocast dtype and memory layout a run trains in on a device."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from polyplib.errors import ConfigError


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), where bf16 autocast trains faster."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check() for check in checks if check is not None)


def bf16_native(device: torch.device) -> bool:
    """Whether `device` computes bf16 in hardware (a GPU that supports it; a CPU with AVX512-BF16 or AMX)."""
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else device.type == "cpu" and native_bf16_cpu()


def precision_name(precision: str, device_type: str, native_bf16: bool) -> str:
    """The precision option `precision` trains in on a device type. auto: bf16 where it is native; else fp16 (with a
    grad scaler) on a GPU and fp32 on the CPU (emulated bf16 is 4-10x slower: `benchmarks/bench_cpu_bf16.py`). On
    the CPU bf16 + channels-last trains x2.1 faster (`polyplib bench`); chapter 3's lite check (3 seeds each) finds no
    Dice difference but cannot show equivalence within +-0.02 either."""
    if precision != "auto":
        return precision
    if device_type == "cuda":
        return "bf16" if native_bf16 else "fp16"
    return "bf16" if native_bf16 else "fp32"


def resolve_precision(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """Autocast dtype and GradScaler need of `precision` on `device` (`precision_name` resolves auto)."""
    precision = precision_name(precision, device.type, precision == "auto" and bf16_native(device))
    if precision == "fp32":
        return None, False
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("option precision=fp16 needs a CUDA device; use precision=fp32 or bf16 on the CPU")
    return (torch.bfloat16, False) if precision == "bf16" else (torch.float16, True)


def keep_fp32_exact(device: torch.device, amp_dtype: torch.dtype | None) -> None:
    """fp32 means fp32 on a GPU too: no TF32 (10 mantissa bits) in cuBLAS products or cuDNN convolutions, which
    PyTorch allows in cuDNN by default; so a GPU trains the fp32 recipe the CPU trains (up to summation order)."""
    if device.type == "cuda" and amp_dtype is None:
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.allow_tf32 = False


def channels_last_for(channels_last: bool | None, device_type: str, precision: str) -> bool:
    """channels_last=None (auto): channels-last memory when training in bf16 on the CPU (oneDNN's bf16 convolutions
    are faster in NHWC: `polyplib bench`), NCHW otherwise."""
    return device_type == "cpu" and precision == "bf16" if channels_last is None else channels_last


def resolve_channels_last(channels_last: bool | None, device: torch.device, amp_dtype: torch.dtype | None) -> bool:
    """`channels_last_for` of a trainer's device and autocast dtype."""
    return channels_last_for(channels_last, device.type, "bf16" if amp_dtype == torch.bfloat16 else "other")


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to `dtype` on `device`; no autocast for fp32 (`dtype=None`)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
