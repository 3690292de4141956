"""`polyplib cascade`: Polyp-SAM with detector boxes vs GT boxes, and the box-jitter robustness study."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from polyplib.errors import ConfigError
from polyplib.models import create_model
from polyplib.sam.model import PolypSAM


def load_sam(spec: str, allow_scratch: bool = False, device: str = "cpu") -> PolypSAM:
    """A trained Polyp-SAM checkpoint (best.pt/last.pt) or a model name (polyp-sam-b: SAM weights, not fine-tuned)."""
    from polyplib.engine.evaluate import load_trained_model

    if Path(spec).is_file():
        model, _ = load_trained_model(spec, device)
    else:
        model = create_model(spec, allow_scratch=allow_scratch)
    if not isinstance(model, PolypSAM):
        raise ConfigError(f"--sam {spec!r} is not a Polyp-SAM checkpoint or model name (e.g. polyp-sam-b)")
    return model


def cmd_cascade(args: argparse.Namespace) -> int:
    """Evaluate Polyp-SAM prompted by GT boxes, by a detector's boxes (--detector), and under box jitter (--jitter)."""
    from polyplib.engine.config import parse_pairs
    from polyplib.engine.evaluate import load_trained_model
    from polyplib.sam.cascade import box_robustness, evaluate_sam

    sam = load_sam(args.sam, args.allow_scratch)
    if not args.detector:
        print("polyplib cascade: no --detector given, so SAM is prompted with ground-truth boxes only (no cascade "
              "result); pass --detector CHECKPOINT for boxes from a trained model", file=sys.stderr)
    dataset_options = parse_pairs(args.dataset_option, "--dataset-option", "n=20")
    options = dict(root=args.root, split=args.split, protocol=args.protocol, image_size=args.image_size,
                   batch_size=args.batch_size, device=args.device, progress=not args.json,
                   dataset_options=dataset_options, overlays=not args.no_overlays)
    out = Path(args.out)
    report: dict = {"sam": args.sam, "pretrained_source": sam.pretrained_source}
    report["gt_boxes"] = evaluate_sam(sam, args.dataset, out / "gt-boxes", **options).summary["means"]
    if args.detector:
        detector, config = load_trained_model(args.detector)
        report["detector"] = args.detector
        report["cascade"] = evaluate_sam(sam, args.dataset, out / "cascade", detector=detector,
                                         detector_size=config.image_size, threshold=args.threshold,
                                         **options).summary["means"]
    if args.jitter:
        options.pop("overlays")
        table = box_robustness(sam, args.dataset, out / "robustness", tuple(args.jitter), **options)
        report["robustness"] = table.to_dict(orient="records")
    (out / "cascade.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name in ("gt_boxes", "cascade"):
            if name in report:
                means = report[name]
                print(f"{name:<10} dice {means['dice']:.4f}  meanDice {means.get('meanDice', float('nan')):.4f}")
        for row in report.get("robustness", []):
            print(f"jitter {row['jitter']:<5g} dice {row['dice']:.4f}")
        print(f"SAM weights: {sam.pretrained_source}; written to {out}")
    return 0


def add_cli(subparsers) -> None:
    """Add the `cascade` subcommand to polyplib's command line."""
    p = subparsers.add_parser("cascade", help="Polyp-SAM with detector boxes (no GT at test time) and box-jitter study")
    p.add_argument("--sam", required=True, help="Polyp-SAM best.pt/last.pt, or a model name such as polyp-sam-b")
    p.add_argument("--detector", help="checkpoint of a trained polyplib model whose prediction gives the boxes")
    p.add_argument("--dataset", required=True)
    p.add_argument("--root")
    p.add_argument("--dataset-option", nargs="+", default=[], metavar="KEY=VALUE",
                   help="load_dataset options, e.g. n=20 for synthpolyp")
    p.add_argument("--split", help="train|val|test of --protocol (default: every pair)")
    p.add_argument("--protocol", default="pranet")
    p.add_argument("--image-size", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threshold", type=float, default=0.5, help="detector probability threshold for the components")
    p.add_argument("--jitter", type=float, nargs="*", help="box-jitter study, fractions of the box (0 0.05 0.1 0.2)")
    p.add_argument("--allow-scratch", action="store_true", help="untrained SAM (results labelled scratch)")
    p.add_argument("--no-overlays", action="store_true", help="skip the best/median/worst overlay figures")
    p.add_argument("--out", default="cascade")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cascade)
