"""`polyplib campaign list|plan|run|collect`: the book's campaigns from the command line."""
from __future__ import annotations

import argparse
import json
import sys

from polyplib.campaigns.profiles import PROFILES
from polyplib.errors import ConfigError

DEFAULT_RESULTS = "results"
GPU_TFLOP_S = 100  # assumed sustained training throughput of one GPU, for the plan's time estimate
METRICS = ("dice", "iou", "meanDice", "meanIoU", "Sm", "wFm", "meanEm", "MAE")


def _context(args: argparse.Namespace):
    from polyplib.campaigns.runner import Context

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads {args.threads}: must be at least 1")
    return Context(results=str(args.results), root=args.root, work=args.work, device=args.device,
                   threads=args.threads)


def _settings(args: argparse.Namespace, tests: str | None = None):
    from polyplib.campaigns.present import configure
    from polyplib.campaigns.profiles import profile_settings
    from polyplib.engine.config import parse_pairs

    settings = profile_settings(args.profile, data_root=args.root, **parse_pairs(args.set or [], example="epochs=1"))
    return configure(settings, tests or args.tests, scratch=args.from_scratch)


def _campaigns(args: argparse.Namespace, tests: str | None = None):
    from polyplib.campaigns.declared import get_campaigns

    return get_campaigns(_settings(args, tests), args.campaigns)


def _print_plan(rows: list[dict], campaigns=(), gpu: bool = False) -> None:
    """One line per run (cost, hours where the campaign has measured timing, status), then the totals of the runs
    that can run here; `gpu`: also the hours at an assumed sustained GPU rate."""
    for r in rows:
        name = " ".join(str(r[k]) for k in ("model", "strategy", "train", "seed") if k in r)
        cost = f"{r['tflops']:.1f} TFLOP" if r["tflops"] is not None else "? TFLOP"
        hours = f" {r['hours']:.1f} h" if r.get("hours") is not None else ""
        detail = f" {r['detail']}" if r["detail"] else ""
        print(f"{r['campaign']:<14} {r['run_id']}  {name:<42} {cost:>13}{hours}  {r['status']}{detail}")
    states = {s: sum(r["status"] == s for r in rows) for s in ("done", "partial", "missing", "unavailable")}
    todo = [r for r in rows if r["status"] in ("missing", "partial")]  # runnable here
    total = sum(r["tflops"] or 0 for r in todo)
    gpu_hours = total / GPU_TFLOP_S / 3600
    print(f"{len(rows)} runs: " + ", ".join(f"{v} {k}" for k, v in states.items())
          + f"; {total:.1f} TFLOP to do here (unavailable runs not counted)"
          + (f", about {gpu_hours:.1f} h of training on one GPU at {GPU_TFLOP_S} TFLOP/s sustained (an assumption: "
             "about a tenth of an H100's dense bf16 peak; `polyplib bench` measures it; evaluation not included)"
             if gpu and total else ""))
    for campaign in campaigns:
        if campaign.timing is None:
            continue
        hours = [r["hours"] for r in rows if r["campaign"] == campaign.name and r["status"] != "done"
                 and r.get("hours") is not None]  # the campaign's cost, wherever its data is
        print(f"{campaign.name}: {sum(hours):.1f} h of run time to do (training and evaluation; about "
              f"{sum(hours) / 2:.1f} h with --jobs 2), at most {max(hours, default=0):.1f} h per run, at the speeds "
              f"measured on {campaign.timing.measured}")


def _print_present(args: argparse.Namespace) -> None:
    """After a plan on the profile's test sets: the runs of the test sets present, and what each absent dataset adds."""
    from polyplib.campaigns.declared import campaigns
    from polyplib.campaigns.present import KVASIR_ONLY_LABEL, gains, is_present
    from polyplib.campaigns.runner import plan

    settings = _settings(args)
    used = dict.fromkeys(d for c in campaigns(settings).values() for s in c.runs for d in s.datasets())
    present = {key for key in used if is_present(key, args.root)}
    if present == set(used):
        return
    have = ", ".join(k for k in used if k in present) or "none of them"
    print(f"\nThe profile uses {', '.join(used)}; under the data root: {have}.")
    if any(k in present for k in settings.test_sets):
        chosen = _settings(args, "present")
        rows = plan(_campaigns(args, "present"), _context(args), args.only)
        runnable = [r for r in rows if r["status"] != "unavailable"]
        sam = f"; Polyp-SAM as the variant {KVASIR_ONLY_LABEL}" if chosen.sam_train != settings.sam_train else ""
        print(f"With --tests present (tested on {', '.join(chosen.test_sets)} only: other run ids than the runs "
              f"tested on all {len(settings.test_sets)}{sam}), {len(runnable)} runs can run:")
        _print_plan(runnable, gpu=True)
    print("Adding a dataset would add:")
    for line in gains(settings, present):
        print(f"  {line}")


def cmd_list(args: argparse.Namespace) -> int:
    from polyplib.campaigns.declared import campaigns

    profiles = [args.profile] if args.profile else list(PROFILES)
    rows = [{"name": c.name, "profile": p, "runs": len(c.runs), "chapter": c.chapter, "description": c.description}
            for p in profiles for c in campaigns(p).values()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'profile':<8} {'campaign':<15} {'runs':>5}  chapters")
        for r in rows:
            print(f"{r['profile']:<8} {r['name']:<15} {r['runs']:>5}  {r['chapter']}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from polyplib.campaigns.runner import check_only, plan

    campaigns = _campaigns(args)
    check_only(campaigns, args.only)
    rows = plan(campaigns, _context(args), args.only)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    _print_plan(rows, campaigns, gpu=args.profile == "full")
    if args.tests in (None, "all"):
        _print_present(args)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from polyplib.campaigns.runner import check_only, parse_budget, run_campaigns

    budget = parse_budget(args.budget)
    check_only(_campaigns(args), args.only)
    slurm = {"partition": args.partition, "time_min": args.time_min, "gpus": args.gpus_per_job,
             "cpus": args.cpus_per_job, "parallel": args.parallel, "wait": args.wait}
    summary = run_campaigns(_campaigns(args), _context(args), only=args.only, jobs=args.jobs, budget=budget,
                            launcher=args.launcher, slurm=slurm,
                            report=lambda line: print(line, file=sys.stderr, flush=True))
    counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items()) or "nothing to run"
    print(f"{counts}; {summary['remaining']} run(s) remain ({summary['elapsed_s']:.0f} s)")
    return 1 if summary["counts"].get("failed") else 0


def cmd_collect(args: argparse.Namespace) -> int:
    from polyplib.campaigns.collect import aggregate, result_rows
    from polyplib.campaigns.runner import check_only, select
    from polyplib.outputs import check_output_file

    if args.out:
        check_output_file(args.out, "--out", overwrite=args.overwrite)
    (campaign,) = _campaigns(args)
    check_only([campaign], args.only)
    results = _context(args).store(campaign).results_for(select(campaign, args.only))
    frame = result_rows(results)
    if frame.empty:
        raise ConfigError(f"no stored results for {args.profile}/{campaign.name} under {args.results}; "
                          f"run `polyplib campaign run {args.profile} {campaign.name}` first")
    unknown = [m for m in args.metrics or () if m not in frame]
    if unknown:
        known = [c for c in frame.columns if c not in ("run_id", "test", "kind", "prompt", "n", "best_epoch",
                                                       *results[0].labels)]
        raise ConfigError(f"--metrics {' '.join(unknown)}: not stored for {campaign.name}; choose from "
                          f"{' '.join(known)}")
    table = aggregate(frame, [m for m in (args.metrics or METRICS) if m in frame]).round(4)
    if not args.out:
        print(table.to_string(index=False))
        return 0
    from polyplib.atomic import atomic_write

    try:
        with atomic_write(args.out) as handle:
            table.to_csv(handle, index=False)
    except OSError as err:
        raise ConfigError(f"--out {args.out}: cannot write it ({err.strerror}); choose another file") from None
    print(f"{len(table)} rows written to {args.out}")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `polyplib campaign ...` to the CLI."""
    parser = subparsers.add_parser("campaign", help="the book's experiment campaigns: list, plan, run, collect",
                                   description="Every book result is a stored run under RESULTS/<profile>/<campaign>/"
                                               "<run-id>.json: runs that are stored are skipped, interrupted runs "
                                               "resume from their last checkpoint in the work folder.")
    sub = parser.add_subparsers(dest="campaign_command", required=True)

    def common(p: argparse.ArgumentParser, campaigns: str = "*") -> None:
        if campaigns:
            p.add_argument("profile", choices=list(PROFILES))
            p.add_argument("campaigns", nargs=campaigns, metavar="CAMPAIGN", help="default: every campaign")
        p.add_argument("--results", default=DEFAULT_RESULTS, help="results store (default: results/)")
        p.add_argument("--root", help="data root (default $POLYPLIB_DATA or ~/.cache/polyplib/data)")
        p.add_argument("--work", help="checkpoints of the runs (default $POLYPLIB_WORK or ~/.cache/polyplib/work)")
        p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
        p.add_argument("--threads", type=int, help="torch threads per run (default: torch's)")
        p.add_argument("--only", help="glob on run id or labels, e.g. 'GMSRF-Net*'")
        p.add_argument("--tests", help="test sets: all (the profile's, default), present (those under --root) or a "
                                       "comma list; the run ids name what is tested; other than all, Polyp-SAM trains "
                                       "on Kvasir-SEG alone when PraNet's TrainDataset is absent")
        p.add_argument("--set", action="append", metavar="NAME=VALUE",
                       help="a profile setting (JSON value), e.g. --set epochs=1 --set seeds=[0] (repeatable)")
        p.add_argument("--from-scratch", action="store_true",
                       help="random initial weights instead of ImageNet/SAM weights (labelled scratch)")

    p = sub.add_parser("list", help="campaigns and their run counts")
    p.add_argument("--profile", choices=list(PROFILES))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("plan", help="every run with its status and estimated cost")
    common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("run", help="run what is missing (resumes partial runs)")
    common(p)
    p.add_argument("--jobs", type=int, default=1, help="runs at once on this machine (default 1)")
    p.add_argument("--budget", help="stop at the next checkpoint after this long, e.g. 8m, 2h (default: none)")
    p.add_argument("--launcher", choices=("local", "submitit-local", "slurm"), default="local",
                   help="local processes (default), submitit's local executor, or SLURM through submitit")
    p.add_argument("--partition", help="SLURM partition")
    p.add_argument("--time-min", type=int, default=60, help="SLURM time limit per job in minutes (default 60)")
    p.add_argument("--gpus-per-job", type=int, help="SLURM GPUs per job")
    p.add_argument("--cpus-per-job", type=int, help="SLURM CPUs per job")
    p.add_argument("--parallel", type=int, help="SLURM array jobs running at once")
    p.add_argument("--wait", action="store_true", help="SLURM: wait for the jobs and report them")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("collect", help="aggregated table of one campaign (mean and sd over seeds)")
    common(p, campaigns=1)
    p.add_argument("--metrics", nargs="+", help=f"default: {' '.join(METRICS)}")
    p.add_argument("--out", help="write CSV here instead of printing (its folder is made when missing)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=cmd_collect)
