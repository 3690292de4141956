"""Honest timings: repeated blocks interleaved in ABBA order, medians with their min-max, and when not to trust them."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch

MAX_SPREAD = 0.2  # (max - min) / median above which a timing (or the ratio of two) is not to be trusted
MIN_REPEATS = 3


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_flops(device: torch.device, quick: bool = False) -> float:
    """Measured dense matmul FLOP/s: bf16 on GPU, fp32 on CPU (the denominator of model FLOP utilisation)."""
    cuda = device.type == "cuda"
    n = 8192 if cuda else (512 if quick else 1024)
    dtype = torch.bfloat16 if cuda else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    iters = 20 if cuda else 3
    for _ in range(2):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - start)


def summarize(samples: list[float]) -> dict[str, float]:
    """Median, min, max and relative spread ((max - min) / median) of repeated measurements."""
    if not samples:
        raise ValueError("summarize needs at least one sample")
    median = statistics.median(samples)
    return {"median": median, "min": min(samples), "max": max(samples),
            "spread": (max(samples) - min(samples)) / median if median else float("inf")}


def paired_ratios(ours_s: list[float], authors_s: list[float]) -> list[float]:
    """Speed-up of each repeat: authors' seconds / ours, from blocks timed back to back (the same load)."""
    return [a / o for o, a in zip(ours_s, authors_s)]


def trust_warning(spreads: dict[str, float], repeats: int, max_spread: float = MAX_SPREAD) -> str | None:
    """Why a comparison cannot be trusted (too few repeats, or a spread wider than `max_spread`), else None."""
    if repeats < MIN_REPEATS:
        return f"only {repeats} timed repeat(s): the spread cannot be judged; use --repeats {MIN_REPEATS} or more"
    wide = {name: value for name, value in spreads.items() if value > max_spread}
    if not wide:
        return None
    worst = ", ".join(f"{name} {100 * value:.0f}%" for name, value in wide.items())
    return (f"timings vary by more than {100 * max_spread:.0f}% between repeats ({worst}); the machine's load "
            "changed during the run, so the figure cannot be trusted: rerun on a quiet machine or with more --repeats")


def interleaved(fns: dict[str, Callable[[], None]], device: torch.device, repeats: int, steps: int,
                warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each function, timed in alternating blocks of `steps` calls (ABBA order, after `warmup`
    calls each) so that every function sees the same changes of machine load."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names, times = list(fns), {name: [] for name in fns}
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else names[::-1]:
            sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                fns[name]()
            sync(device)
            times[name].append((time.perf_counter() - start) / steps)
    return times


def timed(fn: Callable[[], Any], device: torch.device, steps: int, warmup: int) -> list[float]:
    """Seconds of each of `steps` calls of `fn` after `warmup` calls."""
    return interleaved({"fn": fn}, device, steps, 1, warmup)["fn"]


def timing_line(seconds: list[float], batch: int, key: str) -> dict[str, Any]:
    """A benchmark line's median and min-max of images/s and of milliseconds per call (`key`: step_ms or latency_ms)."""
    per_s = summarize([batch / t for t in seconds])
    ms = summarize([1000 * t for t in seconds])
    return {"images_per_s": per_s["median"], "images_per_s_min": per_s["min"], "images_per_s_max": per_s["max"],
            key: ms["median"], f"{key}_min": ms["min"], f"{key}_max": ms["max"], "spread": per_s["spread"],
            "repeats": len(seconds)}


def value_range(line: dict[str, Any], key: str, fmt: str) -> str:
    """`median [min-max]` of one line's measurement (just the value for lines without a range)."""
    text = format(line[key], fmt)
    if f"{key}_min" in line:
        text += f" [{format(line[key + '_min'], fmt)}-{format(line[key + '_max'], fmt)}]"
    return text


def comparison(variant: str, batch: int, gflops: float, ours: dict, authors: dict) -> dict[str, Any]:
    """Speed-up of ours over the authors' line from paired repeats: median, min-max, and a warning when untrusted."""
    ratio = summarize(paired_ratios(ours["seconds"], authors["seconds"]))
    mem = ours["peak_mem_mb"], authors["peak_mem_mb"]
    spreads = {"ours": ours["spread"], "authors": authors["spread"], "ratio": ratio["spread"]}
    return {"variant": variant, "batch": batch, "forward_gflops_per_image": gflops, "speedup": ratio["median"],
            "speedup_min": ratio["min"], "speedup_max": ratio["max"], "repeats": ours["repeats"],
            "memory_ratio": mem[0] / mem[1] if None not in mem else None,
            "warning": trust_warning(spreads, ours["repeats"])}


def _peak_mb(fn: Callable[[], None], device: torch.device) -> float | None:
    """CUDA memory one call of `fn` needs beyond what was allocated before it was built (None on the CPU)."""
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def _built(factory: Callable[[], Callable[[], None]], device: torch.device,
           warmup: int) -> tuple[Callable[[], None], float | None]:
    """Build a line, warm it up, and measure the memory it adds (before the other line exists)."""
    base = torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    fn = factory()
    for _ in range(warmup):
        fn()
    peak = _peak_mb(fn, device)
    return fn, None if peak is None else peak - base


def compare_lines(factories: dict[str, Callable[[], Callable[[], None]]], device: torch.device, batch: int,
                  repeats: int, steps: int, warmup: int, key: str) -> dict[str, dict[str, Any]]:
    """Every line built and warmed up, then timed interleaved: one `timing_line` (with `peak_mem_mb` and the raw
    `seconds` per repeat) per name."""
    fns, peaks = {}, {}
    for name, factory in factories.items():
        fns[name], peaks[name] = _built(factory, device, warmup)
    times = interleaved(fns, device, repeats, steps, warmup=0)
    lines = {name: {**timing_line(times[name], batch, key), "peak_mem_mb": peaks[name], "seconds": times[name]}
             for name in fns}
    del fns
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return lines
