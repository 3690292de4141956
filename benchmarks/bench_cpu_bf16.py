"""bf16 autocast vs fp32 on this CPU, one training step per model (why `precision=auto` and the campaigns' bf16 guard
follow `native_bf16_cpu()`): `python benchmarks/bench_cpu_bf16.py [--models unetplusplus sam-tiny-encoder]`; the
defaults are the lite size (128 px, batch 8), the figures the README quotes."""
import argparse

import torch
from torch import nn

from polyplib.bench.timing import interleaved, summarize
from polyplib.engine.precision import autocast, native_bf16_cpu
from polyplib.models import create_model


def build(model_name: str, size: int) -> nn.Module:
    """A segmentation model of the registry, or `sam-tiny-encoder`: the image encoder of the lite Polyp-SAM."""
    if model_name == "sam-tiny-encoder":
        from polyplib.sam.build import build_sam

        return build_sam("tiny", image_size=size).image_encoder
    return create_model(model_name)


def step(model_name: str, bf16: bool, batch: int, size: int):
    """Forward (first output), a BCE on it, backward and Adam of a fresh model, in bf16 autocast + channels-last or
    fp32."""
    model = build(model_name, size).train()
    images, masks = torch.randn(batch, 3, size, size), (torch.rand(batch, 1, size, size) > 0.5).float()
    if bf16:
        model, images = model.to(memory_format=torch.channels_last), images.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def call() -> None:
        with autocast(torch.device("cpu"), torch.bfloat16 if bf16 else None):
            out = model(images)
        logits = (out[0] if isinstance(out, (list, tuple)) else out).float()
        target = masks if logits.shape[-2:] == masks.shape[-2:] else torch.zeros_like(logits)  # SAM: embeddings
        nn.functional.binary_cross_entropy_with_logits(logits, target.expand_as(logits)).backward()
        optimizer.step()
        optimizer.zero_grad()

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["unetplusplus", "sam-tiny-encoder"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"native bf16: {native_bf16_cpu()}; one thread, batch {args.batch}, {args.size}x{args.size}, "
          f"median [min-max] of {args.repeats} interleaved repeats")
    for name in args.models:
        fns = {"fp32": step(name, False, args.batch, args.size), "bf16": step(name, True, args.batch, args.size)}
        times = {k: summarize(v) for k, v in interleaved(fns, torch.device("cpu"), args.repeats, 1, 1).items()}
        ratio = times["bf16"]["median"] / times["fp32"]["median"]
        print(f"{name}: fp32 {times['fp32']['median']:.3f} s [{times['fp32']['min']:.3f}-{times['fp32']['max']:.3f}], "
              f"bf16 {times['bf16']['median']:.3f} s [{times['bf16']['min']:.3f}-{times['bf16']['max']:.3f}] per step: "
              f"bf16 / fp32 x{ratio:.1f}")


if __name__ == "__main__":
    main()
