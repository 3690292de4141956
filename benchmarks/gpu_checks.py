"""Device checks before a GPU session spends its time: one bf16 training step of each model of the full profile, one
evaluation, and Polyp-SAM's forward against Meta's SamPredictor on the device. Writes one JSON; exit 1 on a failure.

Usage: python benchmarks/gpu_checks.py --device cuda --root DATA --out checks.json [--sam-model polyp-sam-b]
(no pretrained weights on a lent GPU: every model is built from scratch, which is what these checks need)."""
from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from polyplib.engine.trainer import peak_memory_mb, resolve_device
from polyplib.models import create_model

SEGMENTATION = {"gmsrf": {"variant": "paper"}, "unet": {}, "unetplusplus": {}, "deeplabv3plus": {}}


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def train_step(name: str, options: dict, device: torch.device, size: int, batch: int) -> dict:
    """One bf16-autocast training step (forward, loss, backward, Adam step) on random data; finite loss required."""
    model = create_model(name, **options).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4)
    image = torch.rand(batch, 3, size, size, device=device)
    target = (torch.rand(batch, 1, size, size, device=device) > 0.5).float()
    extra = {"boxes": torch.tensor([[size / 4, size / 4, 3 * size / 4, 3 * size / 4]] * batch, device=device)} \
        if "boxes" in getattr(model, "extra_inputs", ()) else {}
    reset_peak(device)
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        out = model(image, **extra)
        out = out[0] if isinstance(out, tuple) else out
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out.float(), target)
    loss.backward()
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{name}: loss {loss.item()}")
    return {"loss": round(loss.item(), 5), "seconds": round(time.perf_counter() - start, 3),
            "peak_mem_mb": round(peak_memory_mb(device)), "size": size, "batch": batch}


def evaluation(device: torch.device, root: str, size: int) -> dict:
    """GMSRF-Net (untrained) evaluated on the Kvasir-SEG test split of the data root: the metric pipeline runs."""
    import tempfile

    from polyplib.engine.evaluate import evaluate

    model = create_model("gmsrf", variant="paper")
    with tempfile.TemporaryDirectory() as out:
        result = evaluate(model, "kvasir-seg", out_dir=out, root=root, split="test", image_size=size, overlays=False,
                          progress=False, device=str(device))
    return {"n": int(result.summary["n"]), "dice": round(float(result.summary["means"]["dice"]), 5)}


def sam_vs_predictor(device: torch.device, sam_model: str) -> dict:
    """Polyp-SAM's batched forward against SamPredictor.predict on the same frame and box (max |logit difference|)."""
    from segment_anything import SamPredictor

    torch.manual_seed(0)
    model = create_model(sam_model, allow_scratch=True).to(device).eval()
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    box = np.array([80.0, 60.0, 300.0, 240.0], dtype=np.float32)
    predictor = SamPredictor(model.sam)
    with torch.no_grad():
        predictor.set_image(frame)
        ref, _, _ = predictor.predict(box=box, multimask_output=False, return_logits=True)
        image = torch.from_numpy(frame).permute(2, 0, 1)[None].float().div(255).to(device)
        ours = model(image, torch.from_numpy(box)[None].to(device))[0].float().cpu().numpy()
    diff = float(np.abs(ours - ref).max())
    if not diff < 1e-2 * max(1.0, float(np.abs(ref).max())):
        raise AssertionError(f"Polyp-SAM forward differs from SamPredictor by {diff}")
    return {"max_abs_diff": diff, "logit_range": [float(ref.min()), float(ref.max())]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--root", required=True, help="data root (the carried data cache)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--sam-model", default="polyp-sam-b", help="polyp-sam-b on a GPU, polyp-sam-tiny on a CPU")
    parser.add_argument("--size", type=int, default=256, help="segmentation image size")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    device = resolve_device(args.device)
    report: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "cuda": torch.version.cuda,
                    "bf16": bool(device.type == "cpu" or torch.cuda.is_bf16_supported()), "checks": {}}
    sam_size = create_model(args.sam_model, allow_scratch=True).image_size
    checks = {f"train {name}": (lambda n=name: train_step(n, SEGMENTATION[n], device, args.size, args.batch))
              for name in SEGMENTATION}
    for strategy in ("decoder", "full"):
        checks[f"train {args.sam_model} {strategy}"] = (lambda s=strategy: train_step(
            args.sam_model, {"strategy": s, "allow_scratch": True}, device, sam_size, 1))
    checks["evaluate gmsrf"] = lambda: evaluation(device, args.root, args.size)
    checks["sam vs SamPredictor"] = lambda: sam_vs_predictor(device, args.sam_model)
    failed = 0
    for name, check in checks.items():
        try:
            report["checks"][name] = {"ok": True, **check()}
        except Exception as err:  # noqa: BLE001  (every check runs and reports)
            failed += 1
            report["checks"][name] = {"ok": False, "error": f"{type(err).__name__}: {err}"[:500],
                                      "traceback": traceback.format_exc()[-2000:]}
        print(f"{name}: {json.dumps(report['checks'][name])[:200]}", flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
