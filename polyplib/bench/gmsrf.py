"""GMSRF-Net speed suite: our training step against the authors' (fp32, eager, batch 8, legacy structure loss)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn

from polyplib.bench.record import SuiteResult
from polyplib.bench.registry import BenchOptions, register_suite
from polyplib.bench.timing import MAX_SPREAD, compare_lines, comparison, matmul_peak_flops, value_range
from polyplib.engine.precision import autocast, native_bf16_cpu
from polyplib.engine.trainer import resolve_device


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
    cuda = device.type == "cuda"
    fast = cuda or native_bf16_cpu()
    ours = Recipe("ours", torch.bfloat16 if fast else None, fast, cuda and not quick, False, True)
    return {"ours": ours, "authors": Recipe("authors", None, False, False, True, False)}


def synthetic_batch(batch: int, size: int, device: torch.device,
                    channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random images and a centred disc mask per image."""
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


def authors_loss() -> Callable[[Any, torch.Tensor], torch.Tensor]:
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
    loss_fn = authors_loss() if recipe.legacy_loss else build_loss("structure")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=recipe.fused_adam or None)
    images, masks = synthetic_batch(batch, size, device, recipe.channels_last)

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
    images, _ = synthetic_batch(batch, size, device, recipe.channels_last)

    @torch.no_grad()
    def call() -> None:
        with autocast(device, recipe.amp_dtype):
            run(images)

    return call


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


def _public(res: dict[str, Any]) -> dict[str, Any]:
    """A timing line without its raw per-repeat seconds."""
    return {k: v for k, v in res.items() if k != "seconds"}


def gmsrf_table(suite: SuiteResult) -> list[str]:
    """GMSRF-Net lines of the text report: images/s and ms median [min-max], memory, MFU, speed-up ranges."""
    gm = suite.fields
    text = [f"GMSRF-Net at {gm['image_size']}x{gm['image_size']}, peak {gm['peak_flops'] / 1e12:.2f} "
            f"TFLOP/s ({gm['peak_flops_dtype']} matmul); median [min-max] of "
            f"{gm.get('repeats', '?')} interleaved repeats",
            f"{'variant':<9} {'recipe':<8} {'kind':<17} {'batch':>5} {'img/s':>27} {'ms':>24} {'mem MB':>8} {'MFU':>6}"]
    for ln in suite.lines:
        key = "step_ms" if "step_ms" in ln else "latency_ms"
        mem = f"{ln['peak_mem_mb']:.0f}" if ln.get("peak_mem_mb") is not None else "-"
        mfu = f"{100 * ln['mfu']:.1f}%" if "mfu" in ln else "-"
        text.append(f"{ln['variant']:<9} {ln['recipe']:<8} {ln['kind']:<17} {ln['batch']:>5} "
                    f"{value_range(ln, 'images_per_s', '.2f'):>27} {value_range(ln, key, '.1f'):>24} {mem:>8} "
                    f"{mfu:>6}")
    for c in suite.comparisons:
        mem = f"{c['memory_ratio']:.2f}" if c["memory_ratio"] is not None else "n/a (CPU)"
        spread = (f" (range x{c['speedup_min']:.2f}-x{c['speedup_max']:.2f} over {c['repeats']} paired repeats)"
                  if "speedup_min" in c else "")
        text.append(f"{c['variant']}: ours/authors speed-up x{c['speedup']:.2f}{spread}, memory ratio {mem}")
        if c.get("warning"):
            text.append(f"WARNING {c['variant']}: {c['warning']}")
    return text


@register_suite("gmsrf", gmsrf_table)
def bench_gmsrf(options: BenchOptions) -> dict[str, Any]:
    """Training and inference lines for each GMSRF-Net variant, ours interleaved with the authors' reference line."""
    from polyplib.models import describe

    quick, dev = options.quick, resolve_device(options.device)
    size = options.image_size or (64 if quick else 256)
    batch = 2 if quick else 8
    steps = options.steps or (1 if quick else 4)
    repeats = options.repeats or (5 if quick else 10)
    warmup = 1 if quick else 5
    peak = matmul_peak_flops(dev, quick)
    opts = dict(options.model_options)
    lines, comparisons = [], []
    plans = recipes(dev, quick)
    for variant in options.variants:
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
