"""Polyp-SAM speed suite: our batched steps vs the authors' loop (per-image steps, fp16 autocast, accumulation)."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch

from polyplib.bench.record import SuiteResult
from polyplib.bench.registry import BenchOptions, register_suite
from polyplib.bench.timing import comparison, interleaved, sync, timed, timing_line, value_range
from polyplib.engine.precision import autocast
from polyplib.engine.trainer import resolve_device
from polyplib.sam.build import build_sam
from polyplib.sam.model import PolypSAM

# what our recipe should reach on an H100 with vit_b at 1024 px (speed-ups over the authors' loop, batch-1 latency)
TARGETS = {"full_speedup": 3.0, "decoder_speedup": 30.0, "latency_ms": 15.0}


def soft_dice_loss(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice over the whole tensor (the paper's Dice loss on probabilities)."""
    return 1 - (2 * (prob * target).sum() + 1e-5) / (prob.sum() + target.sum() + 1e-5)


def synthetic_batch(batch: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Random images, a centred disc mask and its tight box per image."""
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 4) ** 2).float()
    box = torch.tensor([size / 4, size / 4, 3 * size / 4, 3 * size / 4])
    return {"image": torch.rand(batch, 3, size, size, generator=gen).to(device),
            "mask": disc.expand(batch, 1, size, size).contiguous().to(device), "boxes": box.expand(batch, 4).to(device)}


def authors_step(model: PolypSAM, batch: dict, optimizer, scaler, amp: torch.dtype | None) -> None:
    """ricklisz/Polyp-SAM finetune_all cell9/12: per-image encoder/decoder, fp16 autocast, one step per batch."""
    sam, n, size = model.sam, batch["image"].shape[0], model.image_size
    for i in range(n):
        with autocast(batch["image"].device, amp):
            with torch.set_grad_enabled(model.strategy == "full"):
                emb = sam.image_encoder(batch["image"][i:i + 1])
                sparse, dense = sam.prompt_encoder(points=None, boxes=batch["boxes"][i:i + 1], masks=None)
            low, _ = sam.mask_decoder(image_embeddings=emb, image_pe=sam.prompt_encoder.get_dense_pe(),
                                      sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                      multimask_output=False)
            prob = torch.sigmoid(sam.postprocess_masks(low, (size, size), (size, size)))
            loss = soft_dice_loss(prob, batch["mask"][i:i + 1]) / n
        scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad()


def ours_step(net: Callable, inputs: torch.Tensor, batch: dict, optimizer, amp: torch.dtype | None) -> None:
    """Our step: the whole batch at once (images, or cached embeddings for `decoder`), bf16 autocast."""
    with autocast(inputs.device, amp):
        loss = soft_dice_loss(torch.sigmoid(net(inputs, batch["boxes"]).float()), batch["mask"])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def run_sam_bench(quick: bool = False, device: str = "auto", size: str | None = None, batch: int | None = None,
                  steps: int | None = None, compile: bool = False, repeats: int | None = None) -> dict[str, Any]:
    """Full fine-tuning and cached decoder-only training images/s (ours vs authors, timed in alternating blocks:
    median and min-max per line, the speed-up's range and a warning when the spread is too wide), and batch-1
    inference latency."""
    from polyplib.sam.training import EmbeddingDecoder

    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    size = size or ("tiny" if quick else "vit_b")
    encoder_size = 64 if quick else None
    batch = batch or (2 if quick else 8)
    steps = steps or (1 if quick else 2)
    repeats = repeats or (3 if quick else 10)
    warmup = 1 if quick else 2
    authors_amp, ours_amp = (torch.float16, torch.bfloat16) if cuda else (None, None)
    torch.manual_seed(0)
    lines: list[dict[str, Any]] = []
    speedups: dict[str, dict[str, Any]] = {}
    for strategy in ("full", "decoder"):
        model = PolypSAM(build_sam(size, encoder_size), strategy=strategy).to(dev).train()
        data = synthetic_batch(batch, model.image_size, dev)
        params = [p for p in model.parameters() if p.requires_grad]
        authors_opt = torch.optim.AdamW(params, lr=4e-6, weight_decay=1e-4)
        scaler = torch.amp.GradScaler(dev.type, enabled=cuda)
        opt = torch.optim.AdamW(params, lr=4e-6, weight_decay=1e-4, fused=cuda or None)
        extra: dict[str, float] = {}
        if strategy == "full":
            net, inputs = (torch.compile(model) if compile else model), data["image"]
        else:
            with torch.no_grad(), autocast(dev, ours_amp):
                start = time.perf_counter()
                inputs = model.encode(data["image"]).float()
                sync(dev)
                extra["one_time_embedding_images_per_s"] = batch / (time.perf_counter() - start)
            net = EmbeddingDecoder(model, (model.image_size, model.image_size))
            net = torch.compile(net) if compile else net
        times = interleaved({"ours": lambda: ours_step(net, inputs, data, opt, ours_amp),
                             "authors": lambda: authors_step(model, data, authors_opt, scaler, authors_amp)},
                            dev, repeats, steps, warmup)
        measured = {}
        for recipe in ("authors", "ours"):
            measured[recipe] = {**timing_line(times[recipe], batch, "step_ms"), "seconds": times[recipe],
                                "peak_mem_mb": None}
            line = {"strategy": strategy, "recipe": recipe, "batch": batch,
                    **{k: v for k, v in measured[recipe].items() if k not in ("seconds", "peak_mem_mb")}}
            lines.append({**line, **(extra if recipe == "ours" else {})})
        speedups[strategy] = comparison(strategy, batch, float("nan"), measured["ours"], measured["authors"])
        model = opt = authors_opt = net = inputs = None  # free them before the next strategy
        if cuda:
            torch.cuda.empty_cache()
    model = PolypSAM(build_sam(size, encoder_size)).to(dev).eval()
    one = synthetic_batch(1, model.image_size, dev)
    predict = torch.compile(model) if compile else model

    @torch.no_grad()
    def infer() -> None:
        with autocast(dev, ours_amp):
            predict(one["image"], one["boxes"])

    latency = 1000 * statistics.median(timed(infer, dev, 3 if quick else 20, warmup))
    ranges = {f"{name}_speedup_{end}": speedups[name][f"speedup_{end}"] for name in speedups for end in ("min", "max")}
    warnings = {name: c["warning"] for name, c in speedups.items() if c["warning"]}
    return {"suite": "sam", "device": str(dev), "size": size, "image_size": model.image_size, "quick": quick,
            "compile": compile, "fast_attention": model.fast_attention, "repeats": repeats, "steps_per_repeat": steps,
            "amp": {"authors": str(authors_amp), "ours": str(ours_amp)}, "lines": lines,
            "full_speedup": speedups["full"]["speedup"], "decoder_speedup": speedups["decoder"]["speedup"],
            **ranges, "warnings": warnings,
            "latency_ms": latency, "targets": TARGETS if size == "vit_b" and cuda else None}


def sam_table(suite: SuiteResult) -> list[str]:
    """Polyp-SAM lines of the text report: images/s median [min-max], speed-up ranges, latency, warnings."""
    sam = suite.fields
    text = [f"Polyp-SAM {sam['size']} at {sam['image_size']}x{sam['image_size']}"]
    for ln in suite.lines:
        text.append(f"{ln['strategy']:<9} {ln['recipe']:<8} {'train':<17} {ln['batch']:>5} "
                    f"{value_range(ln, 'images_per_s', '.2f'):>27}")
    for name in ("full", "decoder"):
        spread = (f" (range x{sam[f'{name}_speedup_min']:.2f}-x{sam[f'{name}_speedup_max']:.2f})"
                  if f"{name}_speedup_min" in sam else "")
        text.append(f"{name}: ours/authors speed-up x{sam[f'{name}_speedup']:.2f}{spread}")
    text.append(f"batch-1 latency {sam['latency_ms']:.1f} ms")
    text.extend(f"WARNING Polyp-SAM {name}: {warning}" for name, warning in sam.get("warnings", {}).items())
    return text


@register_suite("sam", sam_table)
def sam_suite(options: BenchOptions) -> dict[str, Any]:
    """`run_sam_bench` at its defaults for the options asked (quick, device, repeats)."""
    return run_sam_bench(quick=options.quick, device=options.device, repeats=options.repeats)
