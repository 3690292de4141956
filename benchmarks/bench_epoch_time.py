"""Seconds per training step and per evaluated image of the `convergence` campaign's models on this CPU (fp32 NCHW,
128 px, batch 8: the structure loss on every deep-supervision output, fused Adam), at 1 and 2 torch threads, timed
in interleaved blocks: `python benchmarks/bench_epoch_time.py [--models gmsrf unet] [--repeats 3]`. The campaign's
docstring (`polyplib.campaigns.declared.CONVERGENCE`) sizes its epochs from these numbers."""
import argparse
import os

import torch

from polyplib.bench.timing import interleaved, summarize
from polyplib.engine.config import TrainConfig
from polyplib.engine.trainer import build_optimizer
from polyplib.losses import build_loss
from polyplib.models import create_model

OPTIONS = {"gmsrf": {"variant": "paper"}}
TRAIN_IMAGES = 800  # Kvasir-SEG GMSRF split: 800 / 100 / 100


def with_threads(threads: int, fn):
    def call() -> None:
        torch.set_num_threads(threads)
        fn()
    return call


def train_step(name: str, batch: int, size: int):
    torch.manual_seed(0)
    model = create_model(name, **OPTIONS.get(name, {})).train()
    optimizer = build_optimizer(model.parameters(), TrainConfig(model=name))
    loss_fn = build_loss("structure")
    images, masks = torch.rand(batch, 3, size, size), (torch.rand(batch, 1, size, size) > 0.7).float()

    def call() -> None:
        loss_fn(model(images), masks).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return call, model


def eval_batch(model, batch: int, size: int):
    images = torch.rand(batch, 3, size, size)

    @torch.no_grad()
    def call() -> None:
        model.eval()
        model(images)
        model.train()
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["gmsrf", "unet"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}; fp32 NCHW, batch {args.batch}, {args.size}x{args.size}, "
          f"median [min-max] of {args.repeats} interleaved repeats")
    steps = TRAIN_IMAGES // args.batch
    for name in args.models:
        step, model = train_step(name, args.batch, args.size)
        fns = {f"train {t} thread(s)": with_threads(t, step) for t in (1, 2)}
        fns.update({f"eval {t} thread(s)": with_threads(t, eval_batch(model, args.batch, args.size)) for t in (1, 2)})
        times = {k: summarize(v) for k, v in interleaved(fns, torch.device("cpu"), args.repeats, 1, 1).items()}
        for key, t in times.items():
            per = (f"{t['median'] * steps:.0f} s per epoch of {steps} steps" if key.startswith("train")
                   else f"{t['median'] / args.batch:.3f} s per image")
            print(f"{name} {key}: {t['median']:.2f} s [{t['min']:.2f}-{t['max']:.2f}] per batch, {per}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
