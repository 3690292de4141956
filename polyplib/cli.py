"""`polyplib ...` or `python -m polyplib ...`: datasets, train, evaluate, predict, describe, prepare, bench, book,
cascade. Start-up imports nothing heavy (no torch) until a command runs."""
from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from polyplib.errors import ConfigError, DataError, PolypError

EXTERNAL_COMMANDS = ("polyplib.book", "polyplib.sam.cli", "polyplib.campaigns.cli")  # modules with add_cli(subparsers)
# Commands of those modules that `polyplib --help` lists without importing the module (it imports torch); a module of
# EXTERNAL_COMMANDS with no entry here is imported to build every parser, so its top level must stay light.
COMMAND_SUMMARIES = {
    "book": ("polyplib.book", "execute the notebooks (papermill) and build the HTML book"),
    "cascade": ("polyplib.sam.cli", "Polyp-SAM with detector boxes (no GT at test time) and box-jitter study"),
    "campaign": ("polyplib.campaigns.cli", "the book's experiment campaigns: list, plan, run, collect"),
}
OWN_COMMANDS = ("datasets", "train", "evaluate", "predict", "describe", "prepare", "bench")


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default (unless the help names it, or it is None, a flag's or empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" not in text and "(default" not in text and action.option_strings \
                and not isinstance(action.default, bool) and action.default not in (None, [], ()) \
                and action.default is not argparse.SUPPRESS:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose help shows option defaults (used for every subcommand, external ones included)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def _print(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if as_json else text)


# -- datasets ---------------------------------------------------------------------------------------------------
def cmd_datasets(args: argparse.Namespace) -> int:
    """List the datasets present under the data root, or download one."""
    from polyplib import data

    if args.action == "download":
        if not args.name:
            raise ConfigError("`polyplib datasets download NAME`: name the dataset to download "
                              "(see `polyplib datasets`)")
        path = data.download(args.name, args.root)
        _print({"name": args.name, "path": str(path)}, args.json, f"{args.name} is at {path}")
        return 0
    if args.action in ("segments", "duplicates"):
        return _frame_structure(args)
    root = data.data_root(args.root)
    if not root.is_dir():
        origin = "--root" if args.root is not None else "the data root ($POLYPLIB_DATA or ~/.cache/polyplib/data)"
        raise DataError(f"data root {root} ({origin}) does not exist or is not a folder; pass --root DIR of an "
                        "existing folder or fetch a dataset with `polyplib datasets download NAME --root DIR`")
    rows = data.list_datasets(args.root)
    text = "\n".join(f"{r['name']:<24} {r['pairs']:>6}  {r.get('path') or ''}" for r in rows)
    empty = f"no datasets under {data.data_root(args.root)}"
    _print(rows, args.json, f"{'dataset':<24} {'pairs':>6}  path\n{text}" if rows else empty)
    return 0


def _frame_structure(args: argparse.Namespace) -> int:
    """`datasets segments NAME` and `datasets duplicates NAME`: which frames are not independent."""
    from polyplib.data import frames, get_split
    from polyplib.data.registry import find_pairs

    if not args.name:
        raise ConfigError(f"`polyplib datasets {args.action} NAME`: name the dataset (e.g. "
                          f"{'cvc-colondb' if args.action == 'segments' else 'kvasir-seg'})")
    if args.out and Path(args.out).exists():
        raise ConfigError(f"--out {args.out} exists; name a new file (nothing is written over)")
    if args.action == "segments":
        derived = frames.derive_segments(args.name, args.root)
        if args.out:
            frames.write_segments(derived, args.out)
        text = "\n".join([*(f"{m:<20} change points at frames {[derived['ids'][b] for b in bs]}"
                             for m, bs in derived["methods"].items()),
                           f"consensus: {len(derived['boundaries']) + 1} segments of the {derived['n_sequences']} "
                           f"sequences, starting at frames {[derived['ids'][0], *(derived['ids'][b] for b in derived['boundaries'])]}"])
        _print(derived, args.json, text)
        return 0
    pairs = find_pairs(args.name, args.root)
    found = frames.near_duplicates({p.id: p.image_path for p in pairs})
    if args.out:
        frames.write_duplicates(found, args.out)
    leaks = frames.split_leaks(found, get_split(args.name, "gmsrf", args.root))
    text = (f"{len(found)} near-duplicate pair(s) among {len(pairs)} frames of {args.name} (pHash distance <= "
            f"{frames.DUPLICATE_BITS} of 64 bits and grey-thumbnail correlation >= {frames.DUPLICATE_CORRELATION}); "
            f"{len(leaks)} cross the GMSRF split (seed 0)"
            + "".join(f"\n  {r['a']} / {r['b']}: {r['bits']} bits, r {r['correlation']}, {r['parts']}" for r in leaks))
    _print({"pairs": found, "leaks": leaks}, args.json, text)
    return 0


# -- train ------------------------------------------------------------------------------------------------------
TRAIN_FLAGS = {"model": str, "dataset": str, "root": str, "protocol": str, "epochs": int, "batch_size": int,
               "lr": float, "image_size": int, "out_dir": str, "device": str, "seed": int, "workers": int,
               "precision": str}


def build_config(args: argparse.Namespace):
    """Preset, then --config JSON, then explicit flags, then --set key=value. With --resume, the run's recorded
    OUT/config.json replaces preset and --config (explicit flags and --set still apply, and must fit the run)."""
    from polyplib.engine import TrainConfig, apply_overrides, get_preset

    config = get_preset(args.preset) if args.preset else TrainConfig()
    if args.config:
        config = config.replace(**TrainConfig.load(args.config).to_dict())
    recorded = Path(args.out_dir or config.out_dir) / "config.json"
    if args.resume and not recorded.is_file():
        raise ConfigError(f"--resume: {recorded.parent} holds no run to resume (no config.json); check --out, or "
                          "drop --resume to start a new run there")
    if args.resume:
        config = TrainConfig.load(recorded)
        print(f"polyplib train: resuming with the options recorded in {recorded}", file=sys.stderr)
    if args.dataset is not None and args.dataset != config.dataset:
        config = config.replace(dataset_options={})  # the preset's options belong to its own dataset (--set adds)
    config = config.replace(**{k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None})
    model_options = {k: getattr(args, k) for k in ("variant", "strategy") if getattr(args, k) is not None}
    if args.allow_scratch:
        model_options["allow_scratch"] = True
    if model_options:
        config = config.replace(model_options={**config.model_options, **model_options})
    if args.no_progress:
        config = config.replace(progress=False)
    return apply_overrides(config, args.set)


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model with the run kind that trains it (`polyplib.engine.kinds`)."""
    from polyplib.engine import train

    config = build_config(args)
    result = train(config, resume=args.resume, overwrite=args.overwrite)
    data = {"out_dir": str(result.out_dir), "best_checkpoint": str(result.best_checkpoint or ""),
            "last_checkpoint": str(result.last_checkpoint), "best_metric": result.best_metric,
            "best_epoch": result.best_epoch, "epochs": len(result.history)}
    best = "none" if result.best_metric is None else f"{result.best_metric:.4f}"
    _print(data, args.json, f"done: best {config.select} {best} at epoch {result.best_epoch}; "
                            f"checkpoints in {result.out_dir}")
    return 0


# -- evaluate / predict -----------------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    """Per-image CSV, summary JSON and overlay grid for a checkpoint on one dataset split."""
    from polyplib.engine.config import parse_pairs
    from polyplib.engine.evaluate import evaluate

    result = evaluate(args.checkpoint, args.dataset, out_dir=args.out, root=args.root, split=args.split,
                      protocol=args.protocol, image_size=args.image_size, batch_size=args.batch_size,
                      save_predictions=args.save_predictions, overlays=not args.no_overlays, device=args.device,
                      dataset_options=parse_pairs(args.set, example="n=20"), progress=not (args.json or args.no_progress),
                      overwrite=args.overwrite)
    summary = result.summary
    text = "\n".join(f"{k:<12} {v:.4f}" for k, v in summary["means"].items())
    labels = "".join(f"\n{k:<12} {summary[k]}" for k in ("prompt_source", "pretrained_source") if k in summary)
    out = result.files["summary"].parent
    _print({**summary, "out": str(out)}, args.json,
           f"{args.dataset} ({summary['n']} images)\n{text}{labels}\nwritten to {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Mask PNGs for a folder of images."""
    from polyplib.engine.evaluate import predict_folder

    written = predict_folder(args.checkpoint, args.input, args.out, image_size=args.image_size,
                             threshold=args.threshold, device=args.device,
                             progress=not (args.json or args.no_progress), overwrite=args.overwrite)
    _print([str(p) for p in written], args.json, f"wrote {len(written)} masks to {args.out}")
    return 0


# -- describe / prepare / bench ---------------------------------------------------------------------------------
def cmd_describe(args: argparse.Namespace) -> int:
    """Parameters, FLOPs and output shapes of a registered model."""
    from polyplib.engine.config import parse_pairs
    from polyplib.models import describe

    options = parse_pairs(args.set, example="num_modules=0")
    if args.variant:
        options["variant"] = args.variant
    if args.allow_scratch:
        options["allow_scratch"] = True
    info = describe(args.name, image_size=args.image_size, **options)
    text = "\n".join(f"{k:<18} {v}" for k, v in info.items())
    _print(info, args.json, f"{args.name}\n{text}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """A resized, compact copy of a dataset (itself a valid data root)."""
    from polyplib.outputs import check_output_dir, check_positive

    check_positive(args.image_size, "--image-size")
    check_output_dir(args.out)
    from polyplib.data import prepare_cache

    path = prepare_cache(args.name, args.out, root=args.root, image_size=args.image_size, image_format=args.format,
                         originals=args.originals, overwrite=args.overwrite)
    _print({"name": args.name, "path": str(path)}, args.json, f"cache of {args.name} written to {path}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Training/inference speed of GMSRF-Net (and Polyp-SAM) against the authors' way of running it."""
    from polyplib.outputs import check_output_file, check_positive

    for option, value in (("--image-size", args.image_size), ("--steps", args.steps), ("--repeats", args.repeats)):
        check_positive(value, option)
    if args.out:
        check_output_file(args.out, "--out", overwrite=args.overwrite)
    from polyplib.bench import format_table, run_bench
    from polyplib.engine.config import parse_pairs

    results = run_bench(args.suite, quick=args.quick, device=args.device, out=args.out, variants=tuple(args.variants),
                        image_size=args.image_size, model_options=parse_pairs(args.set, example="backbone=resnet10t"),
                        steps=args.steps, repeats=args.repeats)
    _print(results.to_json(), args.json, format_table(results))
    return 0


# -- parser -----------------------------------------------------------------------------------------------------
ROOT_HELP = "data root (default: $POLYPLIB_DATA, else ~/.cache/polyplib/data)"
DEVICE_HELP = "auto (CUDA when present), cpu or cuda[:N]"
JSON_HELP = "machine-readable output"
TRAIN_HELP = {
    "model": "model name (polyplib describe NAME)", "dataset": "training dataset name (polyplib datasets)",
    "root": "data root ($POLYPLIB_DATA, else ~/.cache/polyplib/data)", "protocol": "split protocol: gmsrf, pranet, kvasir-official or polyp-sam",
    "epochs": "epochs", "batch_size": "images per step", "lr": "learning rate", "image_size": "training size (pixels)",
    "out_dir": "run folder (checkpoints, log, config.json)", "device": DEVICE_HELP, "seed": "random seed",
    "workers": "data-loading worker processes", "precision": "auto, bf16, fp16 or fp32",
}
# TrainConfig's defaults of those flags, shown by `polyplib train --help` without importing torch (a test keeps them equal)
TRAIN_DEFAULTS = {"model": "gmsrf", "dataset": "kvasir-seg", "root": None, "protocol": "gmsrf", "epochs": 50,
                  "batch_size": 8, "lr": 0.0001, "image_size": 256, "out_dir": "runs/default", "device": "auto",
                  "seed": 0, "workers": 0, "precision": "auto"}


def _device_progress_json(p: argparse.ArgumentParser) -> None:
    """The options of a command that runs a model: where, quietly or not, and its output for machines."""
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def _own_commands(sub: argparse._SubParsersAction) -> None:
    """The parsers of this module's commands."""
    p = sub.add_parser("datasets", help="datasets present under the data root; `datasets download NAME`; "
                                        "`datasets segments cvc-colondb` (video segments), `datasets duplicates NAME`")
    p.add_argument("action", nargs="?", choices=("list", "download", "segments", "duplicates"), default="list",
                   help="list, download, derive the video segments of a dataset's frames, or find near-duplicate "
                        "frames and the ones that cross the GMSRF split")
    p.add_argument("name", nargs="?", help="dataset to download, segment or check for duplicates")
    p.add_argument("--out", help="segments / duplicates: write the table to this CSV file (refused if it exists)")
    p.add_argument("--root", help=ROOT_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("train", help="train a model (presets: gmsrf-paper, gmsrf-official, cpu-tiny, polyp-sam-paper)",
                       description="Train a model. polyp-sam-* models go to Polyp-SAM training (box prompts, "
                                   "sam.json label); they start from the official SAM weights (downloaded once) "
                                   "unless --allow-scratch. Decoder training caches image embeddings, so it needs "
                                   "--set augment=false (or model_options.cache_embeddings=false). Options left out "
                                   "take the preset's (or TrainConfig's) values; --resume takes the run's own.")
    p.add_argument("--preset", help="named recipe to start from (gmsrf-paper, gmsrf-official, cpu-tiny, "
                                    "polyp-sam-paper)")
    p.add_argument("--config", help="TrainConfig JSON (e.g. a run's config.json)")
    for key, kind in TRAIN_FLAGS.items():
        flag = "--out" if key == "out_dir" else "--" + key.replace("_", "-")
        fallback = "" if TRAIN_DEFAULTS[key] is None else f", else {TRAIN_DEFAULTS[key]}"
        p.add_argument(flag, dest=key, type=kind, default=None,
                       help=f"{TRAIN_HELP[key]} (default: the preset's{fallback})")
    p.add_argument("--variant", help="model variant (model_options.variant), e.g. paper or official")
    p.add_argument("--strategy", help="Polyp-SAM fine-tuning strategy (model_options.strategy): decoder, full, or "
                                      "lora (LoRA on the image encoder + mask decoder; rank model_options.lora_rank)")
    p.add_argument("--allow-scratch", action="store_true",
                   help="Polyp-SAM: start from an untrained SAM when the official weights are absent "
                        "(model_options.allow_scratch=true; results are labelled 'scratch' in sam.json)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override any TrainConfig field, e.g. --set image_size=128 max_steps_per_epoch=10")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/last.pt with the options recorded in OUT/config.json (no last.pt: "
                        "starts afresh with them, and says so; no config.json: an error)")
    p.add_argument("--overwrite", action="store_true", help="replace another run that OUT holds")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a dataset split (both metric protocols)",
                       description="Evaluate a training checkpoint on a dataset split (both metric protocols). "
                                   "Polyp-SAM checkpoints are prompted with the tight ground-truth box of each image "
                                   "(prompt_source 'gt-box'); for detector boxes use `polyplib cascade`.")
    p.add_argument("checkpoint", help="best.pt or last.pt of a training run")
    p.add_argument("--dataset", required=True, help="dataset name (polyplib datasets)")
    p.add_argument("--root", help=ROOT_HELP)
    p.add_argument("--split", help="train|val|test of --protocol (default: every pair)")
    p.add_argument("--protocol", default="gmsrf", help="split protocol of --split")
    p.add_argument("--out", default=None,
                   help="output folder (default: CHECKPOINT_FOLDER/eval-<checkpoint>-<dataset>[-<split>])")
    p.add_argument("--overwrite", action="store_true", help="replace another evaluation that OUT holds")
    p.add_argument("--image-size", type=int, default=256, help="model input size (pixels)")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    p.add_argument("--save-predictions", action="store_true", help="probability PNGs at the original resolution")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="dataset options, e.g. n=16 (synthpolyp)")
    p.add_argument("--no-overlays", action="store_true", help="skip the best/median/worst overlay figure")
    _device_progress_json(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="mask PNGs for a folder of images (never written over an input)")
    p.add_argument("checkpoint", help="best.pt or last.pt of a training run")
    p.add_argument("input", help="folder of images")
    p.add_argument("--out", required=True, help="folder for the masks (<image stem>.png); not the input folder")
    p.add_argument("--overwrite", action="store_true", help="replace masks that OUT already holds")
    p.add_argument("--image-size", type=int, default=None, help="model input size (default: the training size)")
    p.add_argument("--threshold", type=float, default=0.5, help="probability above which a pixel is polyp")
    _device_progress_json(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("describe", help="parameters, FLOPs and output shapes of a model")
    p.add_argument("name", help="model name, e.g. gmsrf, unet, polyp-sam-tiny")
    p.add_argument("--variant", help="model variant, e.g. paper or official (GMSRF-Net)")
    p.add_argument("--image-size", type=int, default=256, help="input size for FLOPs and shapes")
    p.add_argument("--allow-scratch", action="store_true",
                   help="Polyp-SAM: an untrained SAM when the official weights are absent")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="model options")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("prepare", help="resized compact cache of a dataset (a data root of its own)")
    p.add_argument("name", help="dataset name (polyplib datasets)")
    p.add_argument("--out", required=True, help="data root of the cache (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace a cache of this dataset that OUT holds")
    p.add_argument("--root", help=ROOT_HELP)
    p.add_argument("--image-size", type=int, default=256, help="cached size (pixels)")
    p.add_argument("--format", choices=("png", "webp", "jpg"), default="png",
                   help="images: png or webp (lossless; webp ~25%% smaller) or jpg (quality 95, ~5x smaller)")
    p.add_argument("--originals", metavar="SPLIT",
                   help="copy this split's files unchanged (e.g. train: augmentation crops at full resolution, so "
                        "training on the cache equals training on the dataset)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("bench", help="GMSRF-Net speed benchmark against the authors' way (fp32, eager, batch 8)",
                       description="Training and inference speed of ours against the authors' recipe: the two lines "
                                   "are timed in alternating blocks after warm-up (both see the same load); each "
                                   "line reports median and min-max, the ratio its range, and a warning when the "
                                   "spread is too wide to trust the figure.")
    p.add_argument("--suite", choices=("gmsrf", "sam", "all"), default="gmsrf", help="which models")
    p.add_argument("--quick", action="store_true", help="few iterations at small sizes (CPU)")
    p.add_argument("--variants", nargs="+", choices=("paper", "official"), default=["paper", "official"],
                   help="GMSRF-Net variants")
    p.add_argument("--image-size", type=int, default=None, help="default 256 (64 with --quick)")
    p.add_argument("--steps", type=int, default=None, help="training steps per timed block (default 4, 1 with --quick)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed blocks per line, alternating ours/authors (default 10, 5 with --quick)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="GMSRF-Net options for every line, e.g. backbone=resnet18 num_modules=1")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--out", help="results JSON path (checked before the benchmark starts)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_bench)


def _external_commands(sub: argparse._SubParsersAction, command: str | None) -> None:
    """Commands of EXTERNAL_COMMANDS: a module is imported only when `command` is one of its COMMAND_SUMMARIES
    (or it has none, or `command` is None); otherwise its commands are listed from COMMAND_SUMMARIES."""
    for module in EXTERNAL_COMMANDS:
        names = [name for name, (owner, _) in COMMAND_SUMMARIES.items() if owner == module]
        if command is not None and names and command not in names:
            for name in names:
                sub.add_parser(name, help=COMMAND_SUMMARIES[name][1], add_help=False)
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        mod.add_cli(sub)


def build_parser(external: bool = True, command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line (`external=False` leaves out the commands of EXTERNAL_COMMANDS; `command`: the command
    about to run, so that only its module is imported)."""
    commands = ", ".join([*OWN_COMMANDS, *COMMAND_SUMMARIES])
    parser = Parser(prog="polyplib", description=f"`polyplib COMMAND ...` or `python -m polyplib COMMAND ...`; "
                                                 f"commands: {commands}.",
                    epilog="`polyplib COMMAND --help` lists the options of a command with their defaults.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    _own_commands(sub)
    if external:
        _external_commands(sub, command)
    return parser


def one_line(err: BaseException) -> str:
    """The message of an error on one line; an error re-raised from a DataLoader worker loses the worker's
    traceback and keeps its own message (which names the file)."""
    text = str(err)
    if "Original Traceback" in text:
        found = list(re.finditer(rf"^(?:[\w.]+\.)?{re.escape(type(err).__name__)}: ", text, re.M))
        if found:
            text = text[found[-1].end():]
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a PolypError becomes a one-line message and exit status 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    own = command in OWN_COMMANDS  # skip importing the other commands' modules (fast start-up)
    args = build_parser(external=not own, command=command).parse_args(argv)
    plain = warnings.formatwarning  # warnings as one line each: `polyplib COMMAND: warning: ...`
    warnings.formatwarning = lambda message, *_, **__: f"polyplib {args.command}: warning: {message}\n"
    try:
        return int(args.func(args) or 0)
    except PolypError as err:
        print(f"polyplib {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"polyplib {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = plain


if __name__ == "__main__":
    sys.exit(main())
