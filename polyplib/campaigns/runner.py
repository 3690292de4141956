"""Plan and run campaigns: status of every run, then the missing ones in-process, in N processes or on SLURM."""
from __future__ import annotations

import dataclasses
import fnmatch
import re
import shutil
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

from polyplib.campaigns.declared import Campaign
from polyplib.campaigns.execute import Outcome, default_work, epochs_done, execute, train_log, unavailable, work_dir
from polyplib.campaigns.spec import RunSpec
from polyplib.campaigns.store import Store
from polyplib.errors import ConfigError, DivergenceError, PolypError

LAUNCHERS = ("local", "submitit-local", "slurm")


@dataclasses.dataclass(frozen=True)
class Context:
    """Where runs read data, keep checkpoints and store results, and how they execute."""

    results: str
    root: str | None = None
    work: str | None = None
    device: str = "auto"
    threads: int | None = None

    def store(self, campaign: Campaign) -> Store:
        return Store(self.results, campaign.profile, campaign.name)

    @property
    def work_path(self) -> Path:
        return Path(self.work) if self.work else default_work()


def parse_budget(text: str | None) -> float | None:
    """Seconds of a budget like `90s`, `8m`, `2h`, `1h30m` (None: no budget)."""
    if text is None:
        return None
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*", text)
    if not text.strip() or parts is None or not any(parts.groups()):
        raise ConfigError(f"--budget {text!r}: expected a duration like 90s, 8m, 2h or 1h30m")
    hours, minutes, seconds = (float(g or 0) for g in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def select(campaign: Campaign, only: str | None) -> list[RunSpec]:
    """The campaign's runs whose label text or id (of any recipe it resolves to) matches the glob `only` (all when
    None)."""
    if not only:
        return list(campaign.runs)
    def text(spec: RunSpec) -> str:
        return " ".join(str(v) for v in spec.labels.values())
    return [s for s in campaign.runs if fnmatch.fnmatch(text(s), only)
            or any(fnmatch.fnmatch(form.run_id, only) for form in s.equivalents())]


def check_only(campaigns: list[Campaign], only: str | None) -> None:
    """A ConfigError when the glob `only` selects no run of `campaigns` (a typo would otherwise read as done)."""
    if only and not any(select(c, only) for c in campaigns):
        raise ConfigError(f"--only {only!r} matches no run of {', '.join(c.name for c in campaigns)}: it is a glob on "
                          "a run's labels as `polyplib campaign plan` lists them (e.g. 'GMSRF-Net*') or on its run id")


_GFLOPS: dict[tuple, float | None] = {}  # per-process memo of `gflops` (one model build per architecture)


def gflops(spec: RunSpec) -> float | None:
    """GFLOPs of one forward pass of the run's model at its image size (None when it cannot be built)."""
    from polyplib.models import create_architecture, describe

    options = dict(spec.config["model_options"])
    if "strategy" in options:  # Polyp-SAM: the forward pass is the same whatever is trained (describe runs no_grad)
        options["strategy"] = "decoder"
    key = (spec.config["model"], repr(sorted(options.items())), spec.config["image_size"])
    if key not in _GFLOPS:
        try:
            model = create_architecture(spec.config["model"], **options)  # no weights fetched for an estimate
            _GFLOPS[key] = describe(model, image_size=spec.config["image_size"])["gflops"]
        except Exception:  # noqa: BLE001  (cost is an estimate; a model that needs weights has none)
            _GFLOPS[key] = None
    return _GFLOPS[key]


def estimated_cost(spec: RunSpec, root: str | None) -> float | None:
    """Training cost in TFLOPs: 3 x forward GFLOPs x training images x epochs (None when unknown); Polyp-SAM
    decoder-only on cached embeddings: one forward per training image."""
    from polyplib.data import get_split
    from polyplib.data.registry import dataset_ids

    flops = gflops(spec)
    if flops is None:
        return None
    cfg = spec.config
    try:
        options = dict(cfg["dataset_options"])
        seed = options.pop("split_seed", None)
        ids = dataset_ids(cfg["dataset"], root, **options)
        n = len(get_split(cfg["dataset"], cfg["protocol"], root, seed, ids=ids, **options)[cfg["train_split"]])
    except Exception:  # noqa: BLE001  (absent data: no estimate)
        return None
    options = cfg["model_options"]
    if options.get("strategy") == "decoder" and options.get("cache_embeddings", True):
        return flops * n / 1000  # Polyp-SAM decoder-only: one frozen-encoder pass per image; the decoder is ~0.1 %
    steps = n // cfg["batch_size"]
    if cfg.get("max_steps_per_epoch"):
        steps = min(steps, cfg["max_steps_per_epoch"] * cfg["grad_accum"])
    return 3 * flops * steps * cfg["batch_size"] * cfg["epochs"] / 1000


def status(spec: RunSpec, store: Store, ctx: Context) -> tuple[str, str, str]:
    """done / partial (epoch k of n) / missing / unavailable (why) of one run, and the id it is (or would be) stored
    under: a stored result's, else the run's recipe as resolved on this machine."""
    stored = store.find(spec)
    if stored is not None:
        return "done", "", stored.run_id
    kept = store.untrusted(spec)
    if kept is not None:
        return "unavailable", f"its result file {kept} is inconsistent: delete it to train the run again", kept.stem
    spec = spec.resolved(ctx.device)
    why = unavailable(spec, ctx.root, ctx.device, ctx.work_path)
    if why:
        return "unavailable", why, spec.run_id
    done = epochs_done(ctx.work_path, spec.run_id)
    state, detail = ("partial", f"at epoch {done} of {spec.config['epochs']}") if done else ("missing", "")
    return state, detail, spec.run_id


def plan(campaigns: list[Campaign], ctx: Context, only: str | None = None, cost: bool = True) -> list[dict[str, Any]]:
    """One row per run: campaign, id, labels, status, estimated training cost and, where its campaign measured it,
    wall time (training and evaluation)."""
    rows = []
    for campaign in campaigns:
        store = ctx.store(campaign)
        for spec in select(campaign, only):
            state, detail, run_id = status(spec, store, ctx)
            done = epochs_done(ctx.work_path, run_id) if state == "partial" else 0
            seconds = campaign.timing.seconds(spec.config, done) if campaign.timing else None
            rows.append({"campaign": campaign.name, "run_id": run_id, **spec.labels, "status": state,
                         "detail": detail, "tflops": estimated_cost(spec, ctx.root) if cost else None,
                         "hours": None if seconds is None else round(seconds / 3600, 2)})
    return rows


def _job(payload: dict[str, Any]) -> dict[str, Any]:
    """One run in a worker process or a submitit job (plain dicts in and out: picklable, JSON-able)."""
    ctx = Context(**payload["context"])
    store = Store(ctx.results, payload["profile"], payload["campaign"])
    spec = RunSpec.from_dict(payload["spec"])
    try:
        outcome = execute(spec, store, root=ctx.root, work=ctx.work, device=ctx.device, threads=ctx.threads,
                          deadline=payload.get("deadline"))
    except PolypError as err:
        if not isinstance(err, DivergenceError):
            raise  # bad input: the CLI's one-line error
        resolved = spec.resolved(ctx.device)
        store.save_failure(resolved, str(err), train_log(ctx.work, resolved.run_id))
        return dataclasses.asdict(Outcome(resolved.run_id, "failed", str(err)))
    except Exception as err:  # a bug or a crash in one run: say where its traceback is and go on with the others
        report = work_dir(ctx.work, spec.resolved(ctx.device).run_id) / "error.txt"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(traceback.format_exc())
        message = str(err).splitlines()[0] if str(err) else ""
        return dataclasses.asdict(Outcome(report.parent.name, "failed", f"{type(err).__name__}: {message[:200]}; "
                                                                 f"traceback in {report}"))
    return dataclasses.asdict(outcome)


def _payloads(campaigns: list[Campaign], ctx: Context, only: str | None, deadline: float | None) -> list[dict]:
    """The runs still to do, those without a cascade detector first (their detectors train in the first wave) and
    those that start from another run's weights last; `needs`: the id of the run one starts from."""
    todo = []
    for campaign in campaigns:
        store = ctx.store(campaign)
        for spec in select(campaign, only):
            if store.find(spec) is None:
                todo.append({"context": dataclasses.asdict(ctx), "profile": campaign.profile,
                             "campaign": campaign.name, "spec": spec.to_dict(), "deadline": deadline,
                             "label": " ".join(str(v) for v in spec.labels.values()), "id": spec.run_id,
                             "needs": None if spec.init is None else spec.pretrained().run_id})
    return sorted(todo, key=lambda p: (bool(RunSpec.from_dict(p["spec"]).detectors()) or bool(p["needs"]),
                                       bool(p["needs"])))


def _ready(pending: list[dict], running: dict[Any, dict]) -> dict | None:
    """The first pending run whose starting run is neither pending nor running (None: all wait for one)."""
    busy = {p["id"] for p in pending} | {p["id"] for p in running.values()}
    return next((p for p in pending if p["needs"] not in busy), None)


def run_campaigns(campaigns: list[Campaign], ctx: Context, *, only: str | None = None, jobs: int = 1,
                  budget: float | None = None, launcher: str = "local", slurm: dict[str, Any] | None = None,
                  report: Callable[[str], None] = print) -> dict[str, Any]:
    """Execute every missing run; stop starting runs (and stop running ones at a checkpoint) once `budget` is spent."""
    if launcher not in LAUNCHERS:
        raise ConfigError(f"--launcher {launcher!r}: choose one of {', '.join(LAUNCHERS)}")
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: must be at least 1")
    missing = [tool for tool in ("sbatch", "srun") if launcher == "slurm" and shutil.which(tool) is None]
    if missing:
        raise ConfigError(f"--launcher slurm: SLURM is not installed here ({' and '.join(missing)} not on PATH); run "
                          "on a SLURM login node, or use --launcher local (or submitit-local) on this machine")
    start = time.time()
    deadline = None if budget is None else start + budget
    todo = _payloads(campaigns, ctx, only, deadline)
    if launcher == "local":
        outcomes = _run_local(todo, jobs, deadline, report)
    else:
        outcomes = _run_submitit(todo, ctx, launcher, slurm or {}, report)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
    remaining = sum(1 for c in campaigns for s in select(c, only) if ctx.store(c).find(s) is None)
    return {"attempted": len(outcomes), "counts": counts, "remaining": remaining,
            "elapsed_s": round(time.time() - start, 1), "outcomes": outcomes}


def _say(report: Callable[[str], None], payload: dict, outcome: dict) -> None:
    detail = f" ({outcome['detail']})" if outcome["detail"] else ""
    report(f"{payload['campaign']}/{outcome['run_id']} {payload['label']}: {outcome['status']}{detail}")


def _run_local(todo: list[dict], jobs: int, deadline: float | None, report) -> list[dict]:
    """In this process (`jobs=1`) or in `jobs` fresh worker processes, one run per process."""
    outcomes = []
    if jobs == 1:
        for payload in todo:
            if deadline is not None and time.time() >= deadline:
                break
            spec = RunSpec.from_dict(payload["spec"]).resolved(payload["context"]["device"])
            report(f"{payload['campaign']}/{spec.run_id} {payload['label']}: running")
            outcomes.append(_job(payload))
            _say(report, payload, outcomes[-1])
        return outcomes
    pending = list(todo)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        running: dict[Any, dict] = {}
        while pending or running:
            while len(running) < jobs and (deadline is None or time.time() < deadline):
                payload = _ready(pending, running)
                if payload is None:
                    break
                pending.remove(payload)
                running[pool.submit(_job, payload)] = payload
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                payload = running.pop(future)
                outcome = future.result()
                if outcome["status"] == "busy" and payload.get("retried") is None and pending:
                    pending.append({**payload, "retried": True})  # its detector was training next door: retry last
                    continue
                outcomes.append(outcome)
                _say(report, payload, outcome)
    return outcomes


def _run_submitit(todo: list[dict], ctx: Context, launcher: str, options: dict[str, Any], report) -> list[dict]:
    """One submitit job per run (a SLURM job array); `submitit-local` runs the same jobs as local processes."""
    import submitit

    folder = ctx.work_path / "submitit"
    if launcher == "slurm":
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(**{k: v for k, v in {
            "slurm_partition": options.get("partition"), "timeout_min": options.get("time_min", 60),
            "gpus_per_node": options.get("gpus"), "cpus_per_task": options.get("cpus"),
            "slurm_array_parallelism": options.get("parallel")}.items() if v is not None})
    else:
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=options.get("time_min", 60))
    if not todo:
        return []
    jobs = executor.map_array(_job, todo)
    report(f"submitted {len(jobs)} job(s) to {launcher}: {', '.join(j.job_id for j in jobs[:5])}"
           f"{' ...' if len(jobs) > 5 else ''} (logs in {folder})")
    if launcher == "slurm" and not options.get("wait"):
        return []
    outcomes = []
    for payload, job in zip(todo, jobs):
        outcomes.append(job.result())
        _say(report, payload, outcomes[-1])
    return outcomes
