"""Execute one run: resume or start training in its work folder, evaluate, store the result (skip if stored)."""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from polyplib.campaigns.box_prompts import CascadeBox, box_prompt
from polyplib.campaigns.spec import RunSpec
from polyplib.campaigns.store import RESULT_FORMAT, Store
from polyplib.errors import DataError

# per-image scores kept in the store (paired statistics); summary means keep every metric
PER_IMAGE = ("dice", "iou", "meanDice", "meanIoU", "wFm", "Sm", "meanEm", "MAE", "monaiDice", "monaiIoU",
             "hd95", "nsd", "area", "pred_empty")  # the report card: boundary (MONAI), polyp size, empty predictions
DIGITS = 5


@dataclasses.dataclass
class Outcome:
    """What one attempt at a run did: done, skipped (stored already), partial, unavailable or busy."""

    run_id: str
    status: str
    detail: str = ""


def work_dir(work: str | Path, run_id: str) -> Path:
    """Where a run keeps its checkpoints and log (outside git)."""
    return Path(work) / run_id


def default_work() -> Path:
    """$POLYPLIB_WORK, else ~/.cache/polyplib/work: checkpoints and caches of campaign runs."""
    return Path(os.environ.get("POLYPLIB_WORK") or "~/.cache/polyplib/work").expanduser()


def unavailable(spec: RunSpec, root: str | None, device: str = "auto", work: str | Path | None = None) -> str | None:
    """Why a run cannot execute here, or None: a dataset absent under the data root, or bf16 autocast on a CPU that
    only emulates bf16 (`benchmarks/bench_cpu_bf16.py` on an AVX2-only AMD EPYC, 128 px, batch 8: U-Net++ x10.5,
    the tiny SAM encoder x4.6 slower than fp32), here or in a cascade detector this run would have to train."""
    from polyplib.data import data_root
    from polyplib.data.registry import locate
    from polyplib.engine import precision, trainer

    for name in spec.datasets():
        try:
            locate(name, root)
        except DataError:
            return f"dataset {name} not found under {data_root(root)}"
    if (spec.config.get("precision") == "bf16" and trainer.resolve_device(device).type == "cpu"
            and not precision.native_bf16_cpu()):
        return ("bf16 autocast on a CPU without native bf16 (AVX512-BF16 or AMX) is emulated, 4-10x slower than "
                "fp32: run it on such a CPU or a GPU")
    # a cascade detector or the run it starts from trains inside this run unless its checkpoint is in `work`
    needed = [("cascade detector", det) for det in spec.detectors()]
    if spec.init is not None:
        needed.append(("pretraining run", spec.pretrained()))
    for role, run in needed:
        trained = work is not None and epochs_done(work, run.run_id) >= run.config["epochs"]
        why = None if trained else unavailable(run, root, device, work)
        if why:
            return f"its {role} {run.run_id} is not trained in the work folder and {why}"
    return None


REOPEN_WAIT_S = 600.0  # how long a run waits for another process that reopens a trained run it needs too


@contextlib.contextmanager
def run_lock(folder: Path, wait: float = 0.0) -> Iterator[bool]:
    """An exclusive lock on a run's work folder (False: another live process still holds it after `wait` seconds);
    freed when the holder dies."""
    folder.mkdir(parents=True, exist_ok=True)
    until = time.monotonic() + wait
    with open(folder / ".lock", "w") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= until:
                    yield False
                    return
                time.sleep(0.1)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def train_run(spec: RunSpec, root: str | None, work: Path, device: str, deadline: float | None,
              start: Path | None = None):
    """Train (or resume, or just reopen) the run's model in `work/<id>/train`, from the weights file `start` (the
    selected checkpoint of the run it starts from) when given."""
    out = work_dir(work, spec.run_id) / "train"
    config = spec.train_config(root=root, out_dir=str(out), device=device)
    if start is not None:
        config = config.replace(model_options={**config.model_options, "checkpoint": str(start)})
    from polyplib.engine import run_kind

    return run_kind(spec.kind).train(config, resume=(out / "last.pt").is_file(), deadline=deadline)


def sha256_ids(ids: list[str]) -> str:
    """SHA-256 of ids one per line: the content of a polyplib split file listing them."""
    return hashlib.sha256("".join(f"{i}\n" for i in ids).encode()).hexdigest()


def _per_image(table) -> dict[str, list]:
    cols = [c for c in PER_IMAGE if c in table.columns]
    rounded = {c: [None if v != v else v for v in table[c].round(DIGITS).tolist()] for c in cols}  # JSON: no NaN
    segment = {"segment": table["segment"].astype(int).tolist()} if "segment" in table else {}
    return {"id": table["id"].astype(str).tolist(), **rounded, **segment}


def _eval_entry(test: dict[str, Any], prompt: str, result, detector: dict[str, Any] | None = None) -> dict[str, Any]:
    entry = {"key": test["key"], "split": test["split"], "protocol": test["protocol"], "prompt": prompt,
             "n": int(result.summary["n"]), "means": {k: round(float(v), 6) for k, v in result.summary["means"].items()
                                                       if v == v},  # a column NaN on every image has no mean
             "per_image": _per_image(result.per_image)}
    return entry if detector is None else {**entry, "detector": detector}


def train_dependency(run: RunSpec, root: str | None, work: Path, device: str, deadline: float | None):
    """Train (or reopen) a run another one needs (a cascade detector, a pretraining run) in its own locked work folder;
    None while it is incomplete and another process trains it. A trained one is only reopened, in seconds: two runs
    that need it at once (two arms of `--jobs 2`) wait for each other instead of one of them giving up."""
    trained = epochs_done(work, run.run_id) >= run.config["epochs"]
    with run_lock(work_dir(work, run.run_id), REOPEN_WAIT_S if trained else 0.0) as mine:
        result = train_run(run, root, work, device, deadline) if mine else None
    return result if result is not None and result.complete else None


def _training_record(det: RunSpec, trained) -> dict[str, Any]:
    """Which training of a run this one depends on drew its boxes or gave its first weights (one retrained on another
    machine may differ from the stored result of the same run id): its id, selected epoch and validation score, training
    time."""
    return {"run_id": det.run_id, "best_epoch": trained.best_epoch, "select": det.config["select"],
            "best_metric": None if trained.best_metric is None else round(float(trained.best_metric), 6),
            "train_s": round(sum(row.get("train_time_s", 0.0) for row in trained.history), 1)}


def evaluate_run(spec: RunSpec, checkpoint: Path, root: str | None, work: Path, device: str,
                 deadline: float | None) -> list[dict[str, Any]] | None:
    """Every test set (x every prompt for Polyp-SAM) of a trained run; None when a detector is still training."""
    from polyplib.engine.evaluate import evaluate, load_trained_model
    from polyplib.engine.trainer import resolve_device

    model = load_trained_model(checkpoint, resolve_device(device))[0]
    size = spec.config["image_size"]
    entries = []
    prompts = [box_prompt(p) for p in spec.prompts]
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, CascadeBox):
            det = prompt.run
            result = train_dependency(det, root, work, device, deadline)
            if result is None:
                return None
            detector = load_trained_model(result.best_checkpoint or result.last_checkpoint, resolve_device(device))[0]
            prompts[i] = prompt.trained(detector, _training_record(det, result))
    for test in spec.tests:
        common = dict(root=root, split=test["split"], protocol=test["protocol"], image_size=size,
                      dataset_options=test["options"], overlays=False, progress=False)
        with tempfile.TemporaryDirectory(prefix="polyplib-eval-") as out:
            if spec.kind == "segmentation":
                entries.append(_eval_entry(test, "none", evaluate(model, test["dataset"], out_dir=out, device=device,
                                                                  **common)))
                continue
            for prompt in prompts:
                result = prompt.evaluate(model, test["dataset"], Path(out) / prompt.name, device=device, **common)
                entries.append(_eval_entry(test, prompt.name, result, prompt.record))
    return entries


def evaluate_test_points(spec: RunSpec, trained, selected: list[dict[str, Any]], root: str | None, work: Path,
                         device: str, deadline: float | None) -> list[dict[str, Any]] | None:
    """The test sets' means with the weights of every epoch of `snapshot_epochs` (per-image scores only for the
    selected checkpoint, whose entries `selected` are reused at its epoch); None when a detector is still training."""
    from polyplib.engine.trainer import snapshot_path

    points = []
    for epoch in spec.config.get("snapshot_epochs", []):
        path = snapshot_path(trained.out_dir, epoch)
        if epoch != trained.best_epoch and not path.is_file():
            raise DataError(f"snapshot {path} of run {spec.run_id} is missing; delete {path.parent.parent} to train "
                            "the run again")
        entries = selected if epoch == trained.best_epoch else evaluate_run(spec, path, root, work, device, deadline)
        if entries is None:
            return None
        points.append({"epoch": epoch, "tests": [{k: v for k, v in e.items() if k != "per_image"} for e in entries]})
    return points


def _provenance(spec: RunSpec, trained, entries: list[dict[str, Any]], root: str | None, device: str,
                wall_s: float, eval_s: float) -> dict[str, Any]:
    import torch

    from polyplib.data import data_root
    from polyplib.engine.checkpoint import load_checkpoint
    from polyplib.engine.provenance import provenance
    from polyplib.engine.trainer import resolve_device

    state = load_checkpoint(trained.best_checkpoint or trained.last_checkpoint)
    splits = {f"{spec.config['dataset']}/{spec.config['protocol']}/{part}": sha256_ids(ids)
              for part, ids in state.get("split", {}).items()}
    for entry in entries:
        tag = f"{entry['key']}/{entry['protocol']}/{entry['split'] or 'all'}"
        splits.setdefault(tag, sha256_ids(entry["per_image"]["id"]))
    history = trained.history
    speeds = [row["images_per_s"] for row in history if "images_per_s" in row]
    dev = resolve_device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    return {**provenance(), "device": name,
            "torch_threads": torch.get_num_threads(), "data_root": str(data_root(root)), "split_sha256": splits,
            "wall_s": round(wall_s, 1), "eval_s": round(eval_s, 1),
            "train_s": round(sum(row.get("train_time_s", 0.0) for row in history), 1),
            "images_per_s": round(sum(speeds) / len(speeds), 2) if speeds else None}


def execute(spec: RunSpec, store: Store, *, root: str | None = None, work: str | Path | None = None,
            device: str = "auto", threads: int | None = None, deadline: float | None = None) -> Outcome:
    """Run `spec` unless a result fulfils it (`Store.find`): resolve its recipe on `device`, resume that run's
    `last.pt`, evaluate, write the result atomically under the resolved run's id."""
    import torch

    stored = store.find(spec)
    if stored is not None:
        return Outcome(stored.run_id, "skipped", "stored already")
    kept = store.untrusted(spec)
    if kept is not None:  # never written over: the user decides what it is
        return Outcome(kept.stem, "unavailable", f"its result file {kept} is inconsistent: delete it to train it again")
    work = Path(work) if work is not None else default_work()
    spec = spec.resolved(device)  # precision=auto as this machine trains it: stored and keyed explicitly
    run_id = spec.run_id
    why = unavailable(spec, root, device, work)
    if why:
        return Outcome(run_id, "unavailable", why)
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    # locked in the store (processes with different --work share it) and in the work folder (a cascade detector)
    with run_lock(store.folder / ".locks" / run_id) as ours, run_lock(work_dir(work, run_id)) as mine:
        if not (ours and mine):
            return Outcome(run_id, "busy", "another process is running it")
        if store.find(spec) is not None:
            return Outcome(run_id, "skipped", "stored meanwhile by another process")
        pretrained = None
        if spec.init is not None:
            pretrained = train_dependency(spec.pretrained(), root, work, device, deadline)
            if pretrained is None:
                return Outcome(run_id, "partial", "the run it starts from is not trained yet")
        weights = None if pretrained is None else pretrained.best_checkpoint or pretrained.last_checkpoint
        trained = train_run(spec, root, work, device, deadline, weights)
        if not trained.complete:
            return Outcome(run_id, "partial", f"stopped by the budget after epoch {len(trained.history)} of "
                                              f"{spec.config['epochs']}")
        eval_start = time.perf_counter()
        checkpoint = trained.best_checkpoint or trained.last_checkpoint
        entries = evaluate_run(spec, checkpoint, root, work, device, deadline)
        points = None if entries is None else evaluate_test_points(spec, trained, entries, root, work, device,
                                                                   deadline)
        if entries is None or points is None:
            return Outcome(run_id, "partial", "its cascade detector is not trained yet")
        now = time.perf_counter()
        result = {
            "format": RESULT_FORMAT, "run_id": run_id, "profile": store.profile, "campaign": store.campaign,
            "spec": spec.to_dict(),
            "provenance": _provenance(spec, trained, entries, root, device, now - start, now - eval_start),
            "train": {"best_epoch": trained.best_epoch, "best_metric": trained.best_metric,
                      "select": spec.config["select"], "epochs": spec.config["epochs"],
                      "history": [_round_row(row) for row in trained.history]},
            "tests": entries, **({"tests_at_epoch": points} if points else {}),
            **({"pretraining": _training_record(spec.pretrained(), pretrained)} if pretrained is not None else {}),
        }
        store.save(result)
    return Outcome(run_id, "done", f"best epoch {trained.best_epoch}")


def _round_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in row.items() if k != "time"}


def train_log(work: str | Path, run_id: str) -> list[dict[str, Any]]:
    """The rows of a run's training log in its work folder (none when it has not started)."""
    from polyplib.engine.history import read_log

    return read_log(work_dir(work, run_id) / "train" / "log.jsonl")


def epochs_done(work: str | Path, run_id: str) -> int:
    """Epochs a run's training log records (0 when it has not started)."""
    return sum(1 for row in train_log(work, run_id) if row.get("epoch") is not None)
