"""GMSRF-Net speed benchmark: our training step against the authors' (fp32, eager, batch 8, legacy structure loss)."""
from __future__ import annotations

import importlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polyplib.engine.provenance import provenance
from polyplib.engine.trainer import _autocast, resolve_device

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
    """`ours` (on GPU: bf16 autocast, channels-last, compiled, fused Adam) and the authors' reference line."""
    cuda = device.type == "cuda"  # on the CPU, channels-last measured slower for GMSRF-Net: ours stays NCHW fp32
    ours = Recipe("ours", torch.bfloat16 if cuda else None, cuda, cuda and not quick, False, cuda)
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


def time_training(variant: str, recipe: Recipe, device: torch.device, batch: int, size: int, steps: int,
                  warmup: int, options: dict | None = None) -> dict[str, float]:
    """Images/s and peak memory of full training steps (forward, deep-supervised loss, backward, clip ±0.5, Adam)."""
    from polyplib.losses import build_loss

    model = build_model(variant, recipe, device, options)
    step_model = torch.compile(model) if recipe.compile else model
    loss_fn = build_loss("structure", legacy_bugs=recipe.legacy_loss)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=recipe.fused_adam or None)
    images, masks = _synthetic_batch(batch, size, device, recipe.channels_last)

    def step() -> None:
        with _autocast(device, recipe.amp_dtype):
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

    for _ in range(warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    del model, step_model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"images_per_s": batch * steps / elapsed, "step_ms": 1000 * elapsed / steps, "peak_mem_mb": peak}


@torch.no_grad()
def time_inference(variant: str, recipe: Recipe, device: torch.device, batch: int, size: int, iters: int,
                   options: dict | None = None, warmup: int = 2) -> dict:
    """Latency per batch and images/s of eval-mode forward passes."""
    model = build_model(variant, recipe, device, options).eval()
    run = torch.compile(model) if recipe.compile else model
    images, _ = _synthetic_batch(batch, size, device, recipe.channels_last)
    for _ in range(warmup):
        with _autocast(device, recipe.amp_dtype):
            run(images)
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        with _autocast(device, recipe.amp_dtype):
            run(images)
    _sync(device)
    elapsed = time.perf_counter() - start
    return {"latency_ms": 1000 * elapsed / iters, "images_per_s": batch * iters / elapsed}


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


def bench_gmsrf(device: str = "auto", quick: bool = False, variants: tuple[str, ...] = VARIANTS,
                image_size: int | None = None, batch_size: int | None = None, steps: int | None = None,
                model_options: dict | None = None) -> dict[str, Any]:
    """Training and inference lines for each GMSRF-Net variant, ours beside the authors' reference line."""
    from polyplib.models import describe

    dev = resolve_device(device)
    size = image_size or (64 if quick else 256)
    batch = batch_size or (2 if quick else 8)
    steps = steps or (2 if quick else 20)
    warmup = 1 if quick else 5
    peak = matmul_peak_flops(dev, quick)
    opts = dict(model_options or {})
    lines, comparisons = [], []
    for variant in variants:
        gflops = float(describe("gmsrf", image_size=size, variant=variant, **opts)["gflops"])
        by_recipe = {}
        for name, recipe in recipes(dev, quick).items():
            res = time_training(variant, recipe, dev, batch, size, steps, warmup, opts)
            res["mfu"] = 3 * gflops * 1e9 * res["images_per_s"] / peak
            by_recipe[name] = res
            lines.append({"variant": variant, "recipe": name, "kind": "train", "batch": batch, **res})
        ours = recipes(dev, quick)["ours"]
        if dev.type == "cuda":
            big = largest_batch(variant, ours, dev, size, opts)
            res = time_training(variant, ours, dev, big, size, steps, warmup, opts)
            lines.append({"variant": variant, "recipe": "ours", "kind": "train", "batch": big, **res,
                          "mfu": 3 * gflops * 1e9 * res["images_per_s"] / peak})
        for name, recipe in recipes(dev, quick).items():
            for kind, b in (("latency", 1), ("throughput", 4 if quick else 32)):
                lines.append({"variant": variant, "recipe": name, "kind": f"infer-{kind}", "batch": b,
                              **time_inference(variant, recipe, dev, b, size, 1 if quick else 20, opts, warmup)})
        mem = by_recipe["ours"]["peak_mem_mb"], by_recipe["authors"]["peak_mem_mb"]
        comparisons.append({"variant": variant, "batch": batch, "forward_gflops_per_image": gflops,
                            "speedup": by_recipe["ours"]["images_per_s"] / by_recipe["authors"]["images_per_s"],
                            "memory_ratio": mem[0] / mem[1] if None not in mem else None})
    return {"suite": "gmsrf", "device": str(dev), "image_size": size, "quick": quick, "model_options": opts,
            "peak_flops": peak, "peak_flops_dtype": "bf16" if dev.type == "cuda" else "fp32",
            "recipes": {k: {**asdict(r), "amp_dtype": str(r.amp_dtype)} for k, r in recipes(dev, quick).items()},
            "lines": lines, "comparisons": comparisons}


def run_bench(suite: str = "gmsrf", quick: bool = False, device: str = "auto", out: str | Path | None = None,
              variants: tuple[str, ...] = VARIANTS, image_size: int | None = None,
              model_options: dict | None = None, steps: int | None = None) -> dict:
    """GMSRF suite and/or Polyp-SAM's (`polyplib.sam.bench.run_sam_bench`, when installed); JSON with provenance."""
    results: dict[str, Any] = {"provenance": provenance(), "suites": {}}
    if suite in ("gmsrf", "all"):
        results["suites"]["gmsrf"] = bench_gmsrf(device, quick, variants, image_size, steps=steps,
                                                 model_options=model_options)
    if suite in ("sam", "all"):
        try:
            sam_bench = importlib.import_module("polyplib.sam.bench")
        except ModuleNotFoundError as err:
            if err.name != "polyplib.sam.bench":
                raise
            results["suites"]["sam"] = {"skipped": "polyplib.sam.bench is not available"}
        else:
            results["suites"]["sam"] = sam_bench.run_sam_bench(quick=quick, device=device)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=2) + "\n")
    return results


def format_table(results: dict) -> str:
    """Plain-text table of the benchmark lines and the speed-up/memory ratios."""
    text = [f"{results['provenance']['machine']} | torch {results['provenance']['torch']}"]
    gm = results["suites"].get("gmsrf")
    if gm:
        text.append(f"GMSRF-Net at {gm['image_size']}x{gm['image_size']}, peak {gm['peak_flops'] / 1e12:.2f} "
                    f"TFLOP/s ({gm['peak_flops_dtype']} matmul)")
        text.append(f"{'variant':<9} {'recipe':<8} {'kind':<17} {'batch':>5} {'img/s':>9} {'ms':>9} "
                    f"{'mem MB':>8} {'MFU':>6}")
        for ln in gm["lines"]:
            ms = ln.get("step_ms", ln.get("latency_ms"))
            mem = f"{ln['peak_mem_mb']:.0f}" if ln.get("peak_mem_mb") is not None else "-"
            mfu = f"{100 * ln['mfu']:.1f}%" if "mfu" in ln else "-"
            text.append(f"{ln['variant']:<9} {ln['recipe']:<8} {ln['kind']:<17} {ln['batch']:>5} "
                        f"{ln['images_per_s']:>9.2f} {ms:>9.1f} {mem:>8} {mfu:>6}")
        for c in gm["comparisons"]:
            mem = f"{c['memory_ratio']:.2f}" if c["memory_ratio"] is not None else "n/a (CPU)"
            text.append(f"{c['variant']}: ours/authors speed-up x{c['speedup']:.2f}, memory ratio {mem}")
    for name, suite in results["suites"].items():
        if name != "gmsrf":
            text.append(f"{name}: {json.dumps(suite)[:500]}")
    return "\n".join(text)
