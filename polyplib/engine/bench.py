"""GMSRF-Net speed benchmark: our training step against the authors' (fp32, eager, batch 8, legacy structure loss)."""
from __future__ import annotations

import importlib
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from polyplib.atomic import write_json_atomic
from polyplib.engine.precision import autocast
from polyplib.engine.provenance import provenance
from polyplib.engine.trainer import resolve_device

VARIANTS = ("paper", "official")


@dataclass(frozen=True)
class Recipe:
    """How one benchmark line runs a model."""

    name: str
    amp_dtype: torch.dtype | None
    channels_last: bool
    compile: bool
    legacy_loss: bool
    fused_adam: bool


def recipes(device: torch.device, quick: bool) -> dict[str, Recipe]:
    """`ours`: the book's recipe (bf16 autocast and channels-last on GPUs and, as in the lite profile, on CPUs with
    native bf16; fused Adam; the boundary weight computed once per batch; compiled on GPU) against the authors' line
    (fp32, eager, NCHW, their loss with its 31x31 pooling per output, a Python loop of gradient clamps)."""
    from polyplib.engine.precision import native_bf16_cpu

    cuda = device.type == "cuda"
    fast = cuda or native_bf16_cpu()
    ours = Recipe("ours", torch.bfloat16 if fast else None, fast, cuda and not quick, False, True)
    return {"ours": ours, "authors": Recipe("authors", None, False, False, True, False)}


def _sync(device: torch.device) -> None:
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
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    _sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - start)


def _synthetic_batch(batch: int, size: int, device: torch.device,
                     channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=gen)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    masks = (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 4) ** 2).float().expand(batch, 1, size, size)
    images, masks = images.to(device), masks.contiguous().to(device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, masks


def build_model(variant: str, recipe: Recipe, device: torch.device, options: dict | None = None) -> nn.Module:
    """GMSRF-Net of `variant` (plus model `options`) set up the way `recipe` runs it."""
    from polyplib.models import create_model

    model = create_model("gmsrf", variant=variant, **(options or {})).to(device).train()
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


MAX_SPREAD = 0.2  # (max - min) / median above which a timing (or the ratio of two) is not to be trusted
MIN_REPEATS = 3


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
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                fns[name]()
            _sync(device)
            times[name].append((time.perf_counter() - start) / steps)
    return times


def _authors_loss() -> Callable[[Any, torch.Tensor], torch.Tensor]:
    """The authors' deep-supervised structure loss: their two bugs, and the 2-D 31x31 pooling redone per output."""
    from polyplib.losses import DeepSupervisionLoss, boundary_weight, structure_loss

    def per_output(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return structure_loss(logits, target, legacy_bce=True, weit=boundary_weight(target, separable=False))

    return DeepSupervisionLoss(per_output, sigmoid_main=True)


def training_step(variant: str, recipe: Recipe, device: torch.device, batch: int, size: int,
                  options: dict | None = None) -> Callable[[], None]:
    """One full training step (forward, deep-supervised loss, backward, clip ±0.5, Adam) of a fresh model."""
    from polyplib.losses import build_loss

    model = build_model(variant, recipe, device, options)
    step_model = torch.compile(model) if recipe.compile else model
    loss_fn = _authors_loss() if recipe.legacy_loss else build_loss("structure")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=recipe.fused_adam or None)
    images, masks = _synthetic_batch(batch, size, device, recipe.channels_last)

    def step() -> None:
        with autocast(device, recipe.amp_dtype):
            loss = loss_fn(step_model(images), masks)
        loss.backward()
        if recipe.legacy_loss:  # the authors' clip_gradient: a Python loop clamping each gradient
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.data.clamp_(-0.5, 0.5)
        else:
            nn.utils.clip_grad_value_(model.parameters(), 0.5)
        optimizer.step()
        optimizer.zero_grad(set_to_none=not recipe.legacy_loss)

    return step


def inference_call(variant: str, recipe: Recipe, device: torch.device, batch: int, size: int,
                   options: dict | None = None) -> Callable[[], None]:
    """One eval-mode forward pass of a fresh model on a synthetic batch."""
    model = build_model(variant, recipe, device, options).eval()
    run = torch.compile(model) if recipe.compile else model
    images, _ = _synthetic_batch(batch, size, device, recipe.channels_last)

    @torch.no_grad()
    def call() -> None:
        with autocast(device, recipe.amp_dtype):
            run(images)

    return call


def _peak_mb(fn: Callable[[], None], device: torch.device) -> float | None:
    """CUDA memory one call of `fn` needs beyond what was allocated before it was built (None on the CPU)."""
    if device.type != "cuda":
        return None
    _sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    _sync(device)
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


def timing_line(seconds: list[float], batch: int, key: str) -> dict[str, Any]:
    """A benchmark line's median and min-max of images/s and of milliseconds per call (`key`: step_ms or latency_ms)."""
    per_s = summarize([batch / t for t in seconds])
    ms = summarize([1000 * t for t in seconds])
    return {"images_per_s": per_s["median"], "images_per_s_min": per_s["min"], "images_per_s_max": per_s["max"],
            key: ms["median"], f"{key}_min": ms["min"], f"{key}_max": ms["max"], "spread": per_s["spread"],
            "repeats": len(seconds)}


def compare_lines(factories: dict[str, Callable[[], Callable[[], None]]], device: torch.device, batch: int,
                  repeats: int, steps: int, warmup: int, key: str) -> dict[str, dict[str, Any]]:
    """Every line built and warmed up, then timed interleaved: one `timing_line` (with `peak_mem_mb`) per name."""
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


def time_training(variant: str, recipe: Recipe, device: torch.device, batch: int, size: int, steps: int,
                  warmup: int, options: dict | None = None, repeats: int = 1) -> dict[str, Any]:
    """Images/s and peak memory of training steps of one line alone (`repeats` blocks of `steps`)."""
    return compare_lines({recipe.name: lambda: training_step(variant, recipe, device, batch, size, options)}, device,
                         batch, repeats, steps, warmup, "step_ms")[recipe.name]


def largest_batch(variant: str, recipe: Recipe, device: torch.device, size: int, options: dict | None = None,
                  start: int = 8, limit: int = 512) -> int:
    """Largest power-of-two batch (from `start`) whose training step fits in GPU memory."""
    best, batch = start, start * 2
    while batch <= limit:
        try:
            time_training(variant, recipe, device, batch, size, steps=1, warmup=1, options=options)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        best, batch = batch, batch * 2
    return best


def comparison(variant: str, batch: int, gflops: float, ours: dict, authors: dict) -> dict[str, Any]:
    """Speed-up of ours over the authors' line from paired repeats: median, min-max, and a warning when untrusted."""
    ratio = summarize(paired_ratios(ours["seconds"], authors["seconds"]))
    mem = ours["peak_mem_mb"], authors["peak_mem_mb"]
    spreads = {"ours": ours["spread"], "authors": authors["spread"], "ratio": ratio["spread"]}
    return {"variant": variant, "batch": batch, "forward_gflops_per_image": gflops, "speedup": ratio["median"],
            "speedup_min": ratio["min"], "speedup_max": ratio["max"], "repeats": ours["repeats"],
            "memory_ratio": mem[0] / mem[1] if None not in mem else None,
            "warning": trust_warning(spreads, ours["repeats"])}


def bench_gmsrf(device: str = "auto", quick: bool = False, variants: tuple[str, ...] = VARIANTS,
                image_size: int | None = None, batch_size: int | None = None, steps: int | None = None,
                model_options: dict | None = None, repeats: int | None = None) -> dict[str, Any]:
    """Training and inference lines for each GMSRF-Net variant, ours interleaved with the authors' reference line."""
    from polyplib.models import describe

    dev = resolve_device(device)
    size = image_size or (64 if quick else 256)
    batch = batch_size or (2 if quick else 8)
    steps = steps or (1 if quick else 4)
    repeats = repeats or (5 if quick else 10)
    warmup = 1 if quick else 5
    peak = matmul_peak_flops(dev, quick)
    opts = dict(model_options or {})
    lines, comparisons = [], []
    plans = recipes(dev, quick)
    for variant in variants:
        gflops = float(describe("gmsrf", image_size=size, variant=variant, **opts)["gflops"])
        train = compare_lines({name: (lambda r=r: training_step(variant, r, dev, batch, size, opts))
                               for name, r in plans.items()}, dev, batch, repeats, steps, warmup, "step_ms")
        for name, res in train.items():
            lines.append({"variant": variant, "recipe": name, "kind": "train", "batch": batch, **_public(res),
                          "mfu": 3 * gflops * 1e9 * res["images_per_s"] / peak})
        if dev.type == "cuda":
            big = largest_batch(variant, plans["ours"], dev, size, opts)
            res = time_training(variant, plans["ours"], dev, big, size, steps, warmup, opts, repeats)
            lines.append({"variant": variant, "recipe": "ours", "kind": "train", "batch": big, **_public(res),
                          "mfu": 3 * gflops * 1e9 * res["images_per_s"] / peak})
        for kind, b in (("latency", 1), ("throughput", 4 if quick else 32)):
            infer = compare_lines({name: (lambda r=r, b=b: inference_call(variant, r, dev, b, size, opts))
                                   for name, r in plans.items()}, dev, b, repeats, 1 if quick else steps, warmup,
                                  "latency_ms")
            for name, res in infer.items():
                lines.append({"variant": variant, "recipe": name, "kind": f"infer-{kind}", "batch": b,
                              **_public(res)})
        comparisons.append(comparison(variant, batch, gflops, train["ours"], train["authors"]))
    return {"suite": "gmsrf", "device": str(dev), "image_size": size, "quick": quick, "model_options": opts,
            "repeats": repeats, "steps_per_repeat": steps, "warmup": warmup, "max_spread": MAX_SPREAD,
            "peak_flops": peak, "peak_flops_dtype": "bf16" if dev.type == "cuda" else "fp32",
            "recipes": {k: {**asdict(r), "amp_dtype": str(r.amp_dtype)} for k, r in plans.items()},
            "lines": lines, "comparisons": comparisons}


def _public(res: dict[str, Any]) -> dict[str, Any]:
    """A timing line without its raw per-repeat seconds and internal spread."""
    return {k: v for k, v in res.items() if k not in ("seconds",)}


def run_bench(suite: str = "gmsrf", quick: bool = False, device: str = "auto", out: str | Path | None = None,
              variants: tuple[str, ...] = VARIANTS, image_size: int | None = None,
              model_options: dict | None = None, steps: int | None = None, repeats: int | None = None) -> dict:
    """GMSRF suite and/or Polyp-SAM's (`polyplib.sam.bench.run_sam_bench`, when installed); JSON with provenance."""
    results: dict[str, Any] = {"provenance": provenance(), "suites": {}}
    if suite in ("gmsrf", "all"):
        results["suites"]["gmsrf"] = bench_gmsrf(device, quick, variants, image_size, steps=steps,
                                                 model_options=model_options, repeats=repeats)
    if suite in ("sam", "all"):
        try:
            sam_bench = importlib.import_module("polyplib.sam.bench")
        except ModuleNotFoundError as err:
            if err.name != "polyplib.sam.bench":
                raise
            results["suites"]["sam"] = {"skipped": "polyplib.sam.bench is not available"}
        else:
            results["suites"]["sam"] = sam_bench.run_sam_bench(quick=quick, device=device, repeats=repeats)
    if out:
        write_json_atomic(Path(out), results)
    return results


def _range(ln: dict[str, Any], key: str, fmt: str) -> str:
    """`median [min-max]` of one line's measurement (just the value for lines without a range)."""
    text = format(ln[key], fmt)
    if f"{key}_min" in ln:
        text += f" [{format(ln[key + '_min'], fmt)}-{format(ln[key + '_max'], fmt)}]"
    return text


def format_table(results: dict) -> str:
    """Plain-text table of the benchmark lines (median [min-max]) and the speed-up ranges, with trust warnings."""
    text = [f"{results['provenance']['machine']} | torch {results['provenance']['torch']}"]
    gm = results["suites"].get("gmsrf")
    if gm:
        text.append(f"GMSRF-Net at {gm['image_size']}x{gm['image_size']}, peak {gm['peak_flops'] / 1e12:.2f} "
                    f"TFLOP/s ({gm['peak_flops_dtype']} matmul); median [min-max] of "
                    f"{gm.get('repeats', '?')} interleaved repeats")
        text.append(f"{'variant':<9} {'recipe':<8} {'kind':<17} {'batch':>5} {'img/s':>27} {'ms':>24} "
                    f"{'mem MB':>8} {'MFU':>6}")
        for ln in gm["lines"]:
            key = "step_ms" if "step_ms" in ln else "latency_ms"
            mem = f"{ln['peak_mem_mb']:.0f}" if ln.get("peak_mem_mb") is not None else "-"
            mfu = f"{100 * ln['mfu']:.1f}%" if "mfu" in ln else "-"
            text.append(f"{ln['variant']:<9} {ln['recipe']:<8} {ln['kind']:<17} {ln['batch']:>5} "
                        f"{_range(ln, 'images_per_s', '.2f'):>27} {_range(ln, key, '.1f'):>24} {mem:>8} {mfu:>6}")
        for c in gm["comparisons"]:
            mem = f"{c['memory_ratio']:.2f}" if c["memory_ratio"] is not None else "n/a (CPU)"
            spread = (f" (range x{c['speedup_min']:.2f}-x{c['speedup_max']:.2f} over {c['repeats']} paired repeats)"
                      if "speedup_min" in c else "")
            text.append(f"{c['variant']}: ours/authors speed-up x{c['speedup']:.2f}{spread}, memory ratio {mem}")
            if c.get("warning"):
                text.append(f"WARNING {c['variant']}: {c['warning']}")
    sam = results["suites"].get("sam")
    if sam and "lines" in sam:
        text.extend(_sam_lines(sam))
    for name, suite in results["suites"].items():
        if name not in ("gmsrf", "sam") or (name == "sam" and "lines" not in suite):
            text.append(f"{name}: {json.dumps(suite)[:500]}")
    return "\n".join(text)


def _sam_lines(sam: dict) -> list[str]:
    """Polyp-SAM lines of the text table: images/s median [min-max], speed-up ranges, latency, warnings."""
    text = [f"Polyp-SAM {sam['size']} at {sam['image_size']}x{sam['image_size']}"]
    for ln in sam["lines"]:
        text.append(f"{ln['strategy']:<9} {ln['recipe']:<8} {'train':<17} {ln['batch']:>5} "
                    f"{_range(ln, 'images_per_s', '.2f'):>27}")
    for name in ("full", "decoder"):
        spread = (f" (range x{sam[f'{name}_speedup_min']:.2f}-x{sam[f'{name}_speedup_max']:.2f})"
                  if f"{name}_speedup_min" in sam else "")
        text.append(f"{name}: ours/authors speed-up x{sam[f'{name}_speedup']:.2f}{spread}")
    text.append(f"batch-1 latency {sam['latency_ms']:.1f} ms")
    text.extend(f"WARNING Polyp-SAM {name}: {warning}" for name, warning in sam.get("warnings", {}).items())
    return text
