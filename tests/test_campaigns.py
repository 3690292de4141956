"""Campaigns: stable run ids, an atomic store, skip-if-done, exact resume after SIGKILL, budget, jobs, submitit."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polyplib.campaigns import (Campaign, Context, RunResult, RunSpec, Store, campaigns, execute, plan,
                               provenance_table, run_campaigns, work_dir)
from polyplib.campaigns.profiles import profile_settings
from polyplib.book.results import CampaignView
from polyplib.book.results import failures as book_failures
from polyplib.campaigns.runner import parse_budget
from polyplib.campaigns.spec import eval_set
from polyplib.engine import get_preset
from polyplib.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
TESTS = (eval_set("synthpolyp-A", "synthpolyp", {"centre": "A", "n": 16}, "test", "gmsrf"),
         eval_set("synthpolyp-B", "synthpolyp", {"centre": "B", "n": 16}, None, "gmsrf"))


def tiny_spec(seed: int = 0, epochs: int = 2, **overrides) -> RunSpec:
    config = get_preset("cpu-tiny", seed=seed, epochs=epochs, **overrides)
    return RunSpec.from_config("segmentation", config, TESTS, model="U-Net (original)", train="synthpolyp-A", seed=seed)


def tiny_campaign(specs) -> Campaign:
    return Campaign("tiny", "test", "-", "three tiny runs", tuple(specs))


def context(tmp_path: Path, name: str) -> Context:
    return Context(results=str(tmp_path / name / "results"), work=str(tmp_path / name / "work"), device="cpu",
                   threads=1)


def numbers(result: RunResult) -> dict:
    """What must be identical between two executions of a run (no times, dates or machine)."""
    history = [{k: v for k, v in row.items() if k not in ("images_per_s", "train_time_s", "peak_mem_mb")}
               for row in result.train.history]
    return {"spec": result.spec.to_dict(), "tests": result.tests, "history": history,
            "best": (result.train.best_epoch, result.train.best_metric)}


def stored(ctx: Context, campaign: Campaign) -> dict:
    store = ctx.store(campaign)
    return {spec.run_id: numbers(store.load(spec.run_id)) for spec in campaign.runs}


def test_run_id_is_stable_and_changes_with_what_changes_the_numbers():
    base = tiny_spec()
    assert base.run_id == tiny_spec().run_id and len(base.run_id) == 12
    same = RunSpec.from_config("segmentation", get_preset("cpu-tiny", seed=0, root="/elsewhere", out_dir="x/y",
                                                          device="cuda", workers=4, progress=True),
                               TESTS, model="another label")
    assert same.run_id == base.run_id
    changed = {tiny_spec(seed=1).run_id, tiny_spec(lr=2e-2).run_id, tiny_spec(image_size=32).run_id,
               tiny_spec(loss_options={"smooth": 2.0}).run_id, base.run_id,
               RunSpec.from_config("segmentation", get_preset("cpu-tiny", epochs=2), TESTS[:1]).run_id}
    assert len(changed) == 6
    assert RunSpec.from_dict(json.loads(json.dumps(base.to_dict()))).run_id == base.run_id


def test_declared_campaigns_have_unique_ids_and_share_the_cascade_detector():
    for profile in ("smoke", "lite", "full"):
        declared = campaigns(profile)
        ids = [i for c in declared.values() for i in c.run_ids()]
        assert len(ids) == len(set(ids)), profile
    lite = campaigns("lite")
    # ablations: 7 variants x 1 seed (CPU budget); fp32 check: 3 seeds; convergence: GMSRF-Net and U-Net x 3 seeds;
    # transfer: the pretraining run and 3 arms x 3 folds
    assert [len(c.runs) for c in lite.values()] == [12, 7, 6, 3, 6, 10]
    detector = lite["polyp-sam"].runs[0].detectors()[0]
    assert detector.run_id in lite["cross-dataset"].run_ids()  # the cascade reuses the trained GMSRF-Net


def test_campaign_completes_and_a_second_call_skips_every_run(tmp_path):
    camp = tiny_campaign([tiny_spec(seed) for seed in range(3)])
    ctx = context(tmp_path, "a")
    summary = run_campaigns([camp], ctx, report=lambda _: None)
    assert summary["counts"] == {"done": 3} and summary["remaining"] == 0
    files = sorted(Path(ctx.store(camp).folder).glob("*.json"))
    assert [f.stem for f in files] == sorted(camp.run_ids())
    result = ctx.store(camp).load(camp.runs[0].run_id)
    assert {e.key for e in result.tests} == {"synthpolyp-A", "synthpolyp-B"}
    unseen = result.entry("synthpolyp-B")
    assert unseen.n == 16 and len(unseen.per_image["dice"]) == 16  # unseen centre: every image
    assert 0 <= unseen.means["dice"] <= 1
    assert abs(sum(unseen.per_image["dice"]) / 16 - unseen.means["dice"]) < 1e-4
    prov = result.provenance.fields
    assert {"commit", "machine", "device", "torch", "date", "wall_s", "images_per_s", "split_sha256"} <= prov.keys()
    assert all(len(h) == 64 for h in prov["split_sha256"].values())
    assert len(result.train.history) == 2
    assert sum(f.stat().st_size for f in files) < 100_000
    again = run_campaigns([camp], ctx, report=lambda _: None)
    assert again["attempted"] == 0 and again["remaining"] == 0
    rows = plan([camp], ctx, cost=False)
    assert [r["status"] for r in rows] == ["done"] * 3


SCRIPT = """
import json, sys
from polyplib.campaigns import Campaign, Context, RunSpec, run_campaigns
specs = [RunSpec.from_dict(d) for d in json.load(open(sys.argv[1]))]
ctx = Context(**json.load(open(sys.argv[2])))
run_campaigns([Campaign("tiny", "test", "-", "-", tuple(specs))], ctx, report=lambda line: print(line, flush=True))
"""


def _launch(tmp_path: Path, specs, ctx: Context) -> subprocess.Popen:
    (tmp_path / "specs.json").write_text(json.dumps([s.to_dict() for s in specs]))
    (tmp_path / "ctx.json").write_text(json.dumps(ctx.__dict__))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path / "specs.json"), str(tmp_path / "ctx.json")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_sigkill_in_the_second_run_resumes_it_and_equals_an_uninterrupted_campaign(tmp_path):
    specs = [tiny_spec(0, epochs=2), tiny_spec(1, epochs=60), tiny_spec(2, epochs=2)]
    camp = tiny_campaign(specs)
    ctx = context(tmp_path, "killed")
    proc = _launch(tmp_path, specs, ctx)
    log = work_dir(ctx.work, specs[1].run_id) / "train" / "log.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (log.is_file() and len(log.read_text().splitlines()) >= 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = ctx.store(camp)
    assert store.has(specs[0].run_id) and not store.has(specs[1].run_id), "the kill must land in the second run"
    first_rows = log.read_text().splitlines()[:2]
    assert [r["status"] for r in plan([camp], ctx, cost=False)][:2] == ["done", "partial"]
    summary = run_campaigns([camp], ctx, report=lambda _: None)
    outcomes = {o["run_id"]: o["status"] for o in summary["outcomes"]}
    assert outcomes == {specs[1].run_id: "done", specs[2].run_id: "done"}  # the first run is skipped
    assert log.read_text().splitlines()[:2] == first_rows  # resumed: the epochs before the kill were kept
    clean = context(tmp_path, "clean")
    run_campaigns([camp], clean, report=lambda _: None)
    assert stored(ctx, camp) == stored(clean, camp)


@pytest.mark.slow
def test_budget_stops_at_a_checkpoint_and_the_next_call_finishes(tmp_path):
    specs = [tiny_spec(0, epochs=40), tiny_spec(1, epochs=2)]
    camp = tiny_campaign(specs)
    ctx = context(tmp_path, "budget")
    first = run_campaigns([camp], ctx, budget=0.5, report=lambda _: None)
    assert first["counts"] == {"partial": 1} and first["remaining"] == 2
    status = plan([camp], ctx, cost=False)[0]
    assert status["status"] == "partial" and status["detail"].startswith("at epoch ")
    assert 1 <= int(status["detail"].split()[2]) < 40
    second = run_campaigns([camp], ctx, report=lambda _: None)
    assert second["counts"] == {"done": 2} and second["remaining"] == 0
    resumed = ctx.store(camp).load(specs[0].run_id)
    epochs = sum(row["train_time_s"] for row in resumed.train.history)
    assert len(resumed.train.history) == 40 and abs(resumed.provenance.train_s - epochs) < 0.1
    table = provenance_table([resumed])  # time of every sitting, not only the one that finished the run
    assert table.loc[0, "train_s"] == resumed.provenance.train_s > 0
    clean = context(tmp_path, "clean")
    run_campaigns([camp], clean, report=lambda _: None)
    assert stored(ctx, camp) == stored(clean, camp)


@pytest.mark.slow
def test_two_jobs_give_the_results_of_one(tmp_path):
    camp = tiny_campaign([tiny_spec(seed) for seed in range(2)])
    one, two = context(tmp_path, "one"), context(tmp_path, "two")
    run_campaigns([camp], one, jobs=1, report=lambda _: None)
    summary = run_campaigns([camp], two, jobs=2, report=lambda _: None)
    assert summary["counts"] == {"done": 2}
    assert stored(one, camp) == stored(two, camp)


@pytest.mark.slow
def test_submitit_local_executor_runs_a_run_end_to_end(tmp_path):
    camp = tiny_campaign([tiny_spec(0)])
    ctx = context(tmp_path, "submitit")
    summary = run_campaigns([camp], ctx, launcher="submitit-local", report=lambda _: None)
    assert summary["counts"] == {"done": 1} and summary["remaining"] == 0
    assert (Path(ctx.work) / "submitit").is_dir()
    clean = context(tmp_path, "clean")
    run_campaigns([camp], clean, report=lambda _: None)
    assert stored(ctx, camp) == stored(clean, camp)


def test_missing_dataset_is_unavailable_not_a_crash(tmp_path):
    spec = RunSpec.from_config("segmentation", get_preset("gmsrf-paper", epochs=1), [
        eval_set("cvc-colondb", "cvc-colondb", {}, None, "gmsrf")])
    camp = tiny_campaign([spec])
    ctx = Context(results=str(tmp_path / "r"), root=str(tmp_path / "empty"), work=str(tmp_path / "w"))
    (tmp_path / "empty").mkdir()
    row = plan([camp], ctx, cost=False)[0]
    assert row["status"] == "unavailable" and f"dataset kvasir-seg not found under {tmp_path / 'empty'}" in row["detail"]
    summary = run_campaigns([camp], ctx, report=lambda _: None)
    assert summary["counts"] == {"unavailable": 1} and not (tmp_path / "r").exists()


def test_bf16_run_is_unavailable_on_a_cpu_without_native_bf16_and_runs_where_it_has_it(tmp_path, monkeypatch):
    from polyplib.campaigns.execute import unavailable
    from polyplib.engine import precision

    camp = tiny_campaign([tiny_spec(0, epochs=1, precision="bf16"), tiny_spec(0, epochs=1, precision="fp32")])
    ctx = context(tmp_path, "emulated")
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: False)
    rows = {row["run_id"]: row for row in plan([camp], ctx, cost=False)}
    bf16, fp32 = (rows[spec.run_id] for spec in camp.runs)
    assert bf16["status"] == "unavailable" and "without native bf16" in bf16["detail"] and fp32["status"] == "missing"
    summary = run_campaigns([camp], ctx, report=lambda _: None)
    assert summary["counts"] == {"unavailable": 1, "done": 1} and summary["remaining"] == 1
    sam = campaigns("smoke")["polyp-sam"].runs[0].to_dict()  # fp32, as the smoke profile trains
    assert unavailable(RunSpec.from_dict(sam), None, "cpu") is None
    cascade = next(p for p in sam["prompts"] if "detector" in p)
    cascade["detector"]["config"]["precision"] = "bf16"  # its GMSRF-Net detector would train inside the SAM run
    spec, detector = RunSpec.from_dict(sam), RunSpec.from_dict(cascade["detector"])
    assert "its cascade detector" in unavailable(spec, None, "cpu", tmp_path / "w")
    log = work_dir(tmp_path / "w", detector.run_id) / "train" / "log.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("".join(json.dumps({"epoch": e}) + "\n" for e in range(detector.config["epochs"])))
    assert unavailable(spec, None, "cpu", tmp_path / "w") is None  # trained already: only its checkpoint is read
    sam["config"]["precision"] = "bf16"  # the SAM run itself in emulated bf16
    assert "without native bf16" in unavailable(RunSpec.from_dict(sam), None, "cpu", tmp_path / "w")
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: True)
    assert plan([camp], ctx, cost=False)[0]["status"] == "missing"  # the same run where the CPU computes bf16


def test_a_cascade_result_records_the_training_of_the_detector_that_drew_its_boxes(tmp_path):
    spec = campaigns("smoke")["polyp-sam"].runs[0]
    store = Store(tmp_path / "r", "smoke", "polyp-sam")
    assert execute(spec, store, work=tmp_path / "w", device="cpu").status == "done"
    detector = spec.detectors()[0]
    log = [json.loads(line) for line in
           (work_dir(tmp_path / "w", detector.run_id) / "train" / "log.jsonl").read_text().splitlines()]
    cascades = [e for e in store.load(spec.run_id).tests if e.prompt == "cascade"]
    assert len(cascades) == len(spec.tests)
    for entry in cascades:
        record = entry.detector
        assert record.run_id == detector.run_id and record.select == "dice"
        assert abs(record.best_metric - max(row["val_dice"] for row in log)) < 1e-6
        assert record.train_s == pytest.approx(sum(row["train_time_s"] for row in log), abs=0.1)
    others = [e for e in store.load(spec.run_id).tests if e.prompt != "cascade"]
    assert others and not any(e.detector for e in others)


def test_truncated_or_foreign_result_file_is_named_in_one_line(tmp_path):
    spec = tiny_spec()
    store = Store(tmp_path, "test", "tiny")
    store.folder.mkdir(parents=True)
    store.path(spec.run_id).write_text('{"format": "polyplib-campaign-result-v1", "run_id"')
    with pytest.raises(DataError, match=rf"{spec.run_id}.json is truncated or not JSON"):
        execute(spec, store, work=tmp_path / "w", device="cpu")
    store.path(spec.run_id).write_text(json.dumps({"rows": []}))
    with pytest.raises(DataError, match="is not a polyplib campaign result"):
        store.load(spec.run_id)
    assert store.path(spec.run_id).read_text() == json.dumps({"rows": []})  # never overwritten


def test_budget_strings():
    assert parse_budget("8m") == 480 and parse_budget("1h30m") == 5400 and parse_budget("90s") == 90
    assert parse_budget(None) is None
    for bad in ("", "soon", "8x", "-3m"):
        with pytest.raises(ConfigError, match="--budget"):
            parse_budget(bad)


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "polyplib", "campaign", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_list_plan_and_errors(tmp_path):
    listed = _cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {"name", "profile", "runs"} <= rows[0].keys()
    assert {(r["profile"], r["name"]): r["runs"] for r in rows}[("lite", "cross-dataset")] == 12
    (tmp_path / "empty").mkdir()
    planned = _cli("plan", "lite", "cross-dataset", "--results", str(tmp_path / "r"), "--root", str(tmp_path / "empty"),
                   "--json")
    assert planned.returncode == 0, planned.stderr
    assert {r["status"] for r in json.loads(planned.stdout)} == {"unavailable"}
    bad = _cli("run", "lite", "no-such-campaign", "--results", str(tmp_path / "r"))
    assert bad.returncode != 0 and "unknown campaign(s) no-such-campaign" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    budget = _cli("run", "smoke", "--budget", "soon", "--results", str(tmp_path / "r"))
    assert budget.returncode != 0 and "--budget 'soon'" in budget.stderr and "Traceback" not in budget.stderr
    foreign = tmp_path / "r" / "smoke" / "cross-dataset"
    foreign.mkdir(parents=True)
    run_id = campaigns("smoke")["cross-dataset"].run_ids()[0]
    (foreign / f"{run_id}.json").write_text("{")
    damaged = _cli("plan", "smoke", "cross-dataset", "--results", str(tmp_path / "r"))
    assert damaged.returncode != 0 and f"{run_id}.json is truncated" in damaged.stderr
    assert len(damaged.stderr.strip().splitlines()) == 1


def test_a_run_that_crashes_is_reported_failed_with_its_traceback_and_the_others_still_run(tmp_path, monkeypatch):
    import polyplib.campaigns.runner as runner

    camp = tiny_campaign([tiny_spec(seed, epochs=1) for seed in range(2)])
    ctx = context(tmp_path, "crash")
    broken, real = camp.runs[0].run_id, runner.execute

    def crash_first(spec, store, **kwargs):
        if spec.run_id == broken:
            raise RuntimeError("self.stride(-1) must be 1 to view Float as Byte\nsecond line")
        return real(spec, store, **kwargs)

    monkeypatch.setattr(runner, "execute", crash_first)
    lines = []
    summary = run_campaigns([camp], ctx, report=lines.append)
    assert summary["counts"] == {"failed": 1, "done": 1} and summary["remaining"] == 1
    failed = next(o for o in summary["outcomes"] if o["status"] == "failed")
    assert failed["run_id"] == broken and "RuntimeError: self.stride(-1)" in failed["detail"]
    assert "second line" not in failed["detail"]
    trace = work_dir(ctx.work, broken) / "error.txt"
    assert trace.is_file() and "Traceback" in trace.read_text() and str(trace) in failed["detail"]
    assert not ctx.store(camp).has(broken) and ctx.store(camp).has(camp.runs[1].run_id)
    assert any(line.endswith(f"traceback in {trace})") for line in lines)


def test_a_run_whose_model_outputs_nan_at_evaluation_fails_in_one_line_and_the_campaign_goes_on(tmp_path, monkeypatch):
    import polyplib.engine.evaluate as evaluation

    camp = tiny_campaign([tiny_spec(seed, epochs=1) for seed in range(2)])
    ctx, real, calls = context(tmp_path, "nan"), evaluation.model_predict_fn, []

    def first_model_overflows(model, device):  # the first evaluation of the first run sees a NaN map
        predict, poisoned = real(model, device), not calls
        calls.append(1)
        return (lambda batch: predict(batch) * float("nan")) if poisoned else predict

    monkeypatch.setattr(evaluation, "model_predict_fn", first_model_overflows)
    summary = run_campaigns([camp], ctx, report=lambda line: None)
    assert summary["counts"] == {"failed": 1, "done": 1} and summary["remaining"] == 1
    failed = next(o for o in summary["outcomes"] if o["status"] == "failed")
    assert failed["run_id"] == camp.runs[0].run_id and "output is not finite on synthpolyp image(s)" in failed["detail"]
    store, bad = ctx.store(camp), camp.runs[0]
    assert not store.has(bad.run_id) and store.has(camp.runs[1].run_id)
    record = store.failure(bad)  # why it is missing, with the epoch it trained, for the book
    assert record.reason == failed["detail"] and [row["epoch"] for row in record.history] == [0]
    assert record.spec.to_dict() == bad.resolved("cpu").to_dict() and store.failure(camp.runs[1]) is None
    view = CampaignView(profile_settings("smoke"), camp, store.results_for(camp.runs),
                        failures=book_failures(store, camp.runs))
    assert view.missing_text() == (f" Missing runs, failed: U-Net (original) seed 0 (**diverged**: {failed['detail']}).")
    monkeypatch.setattr(evaluation, "model_predict_fn", real)  # the retry evaluates cleanly: stored, record dropped
    assert run_campaigns([camp], ctx, report=lambda line: None)["counts"] == {"done": 1}
    assert store.has(bad.run_id) and store.failure(bad) is None and not store.failure_path(bad.run_id).exists()


def test_precision_auto_is_stored_as_this_machine_resolves_it_and_any_resolution_fulfils_it(tmp_path, monkeypatch):
    from polyplib.engine import precision

    auto = tiny_spec(0, epochs=1, precision="auto")  # channels_last: None (auto)
    fp32, bf16 = auto.resolved_on("cpu", False), auto.resolved_on("cpu", True)
    assert (fp32.config["precision"], fp32.config["channels_last"]) == ("fp32", False)
    assert (bf16.config["precision"], bf16.config["channels_last"]) == ("bf16", True)
    assert auto.resolved_on("cuda", False).config["precision"] == "fp16"
    assert fp32.resolved_on("cpu", True) == fp32 and fp32.equivalents() == [fp32]  # explicit: itself only
    assert len({auto.run_id, fp32.run_id, bf16.run_id}) == 3
    camp, ctx = tiny_campaign([auto]), context(tmp_path, "auto")
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: False)
    row = plan([camp], ctx, cost=False)[0]
    assert row["status"] == "missing" and row["run_id"] == fp32.run_id
    assert run_campaigns([camp], ctx, report=lambda _: None)["counts"] == {"done": 1}
    store = ctx.store(camp)
    assert [p.stem for p in store.folder.glob("*.json")] == [fp32.run_id]
    config = store.load(fp32.run_id).spec.config
    assert (config["precision"], config["channels_last"]) == ("fp32", False)
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: True)  # where bf16 is native: fulfilled, not re-run
    assert plan([camp], ctx, cost=False)[0]["status"] == "done"
    assert run_campaigns([camp], ctx, report=lambda _: None)["attempted"] == 0
    assert store.find(tiny_spec(0, epochs=1, precision="bf16", channels_last=True)) is None
    legacy = RunSpec(bf16.kind, {**bf16.config, "channels_last": None}, bf16.tests, labels=bf16.labels)
    other = Store(tmp_path / "legacy", "test", "tiny")  # stored before auto was resolved: channels-last left open
    other.save({**store.load(fp32.run_id).to_dict(), "run_id": legacy.run_id, "spec": legacy.to_dict()})
    assert other.find(auto).run_id == legacy.run_id


def test_every_committed_result_fulfils_a_declared_run():
    for profile in ("lite", "full"):
        for name, camp in campaigns(profile).items():
            store = Store(REPO / "results", profile, name)
            assert {r.run_id for r in store.results_for(camp.runs)} == {r.run_id for r in store.results()}, name


def test_every_committed_result_keeps_its_run_id():
    """Options added since (snapshot_epochs, ...) leave stored specs hashing to the ids they were stored under."""
    files = [p for p in (REPO / "results").glob("*/*/*.json") if p.parent.name not in ("bench", "figures")]
    assert len(files) >= 27
    for path in files:
        result = json.loads(path.read_text())
        assert RunSpec.from_dict(result["spec"]).run_id == result["run_id"] == path.stem, path
    first = campaigns("lite")["cross-dataset"].runs[0].resolved_on("cpu", True)  # GMSRF-Net seed 0, bf16 (Xeon)
    assert first.run_id == "595837494b2e" and "snapshot_epochs" not in first.identity()["config"]


def test_convergence_runs_store_test_points_at_their_epochs(tmp_path):
    from polyplib.engine.evaluate import evaluate, load_trained_model

    lite = campaigns("lite")["convergence"]
    assert [(s.labels["model"], s.labels["seed"]) for s in lite.runs] == [
        (m, seed) for seed in (0, 1, 2) for m in ("GMSRF-Net", "U-Net")]  # seed 0 of both first: the pilot
    for spec in lite.runs:
        c = spec.config
        assert (c["precision"], c["channels_last"], c["schedule"], c["optimizer"], c["lr"], c["batch_size"]) == (
            "fp32", False, "warmup-cosine", "adam", 1e-4, 8)
        assert c["snapshot_epochs"] == [5, 10, 15, c["epochs"]] and spec.equivalents() == [spec]  # one recipe
        assert [t["key"] for t in spec.tests] == ["kvasir-seg", "cvc-colondb"] and spec.tests[1]["split"] is None
    camp = campaigns("smoke")["convergence"]
    ctx = context(tmp_path, "convergence")
    assert run_campaigns([camp], ctx, report=lambda _: None)["counts"] == {"done": 2}
    for spec in camp.runs:
        result = ctx.store(camp).load(spec.run_id)
        points = {p.epoch: p.tests for p in result.tests_at_epoch}
        assert list(points) == [1, 2] and not any(e.per_image for tests in points.values() for e in tests)
        best = result.train.best_epoch
        assert [e.means for e in points[best]] == [e.means for e in result.tests]  # reused, not redone
        model = load_trained_model(work_dir(ctx.work, spec.run_id) / "train" / "last.pt")[0]  # epoch 2's weights
        unseen = next(t for t in spec.tests if t["key"] == "synthpolyp-B")
        direct = evaluate(model, "synthpolyp", out_dir=tmp_path / spec.run_id, image_size=64, overlays=False,
                          progress=False, device="cpu", dataset_options=unseen["options"]).summary["means"]["dice"]
        assert next(e for e in points[2] if e.key == "synthpolyp-B").means["dice"] == pytest.approx(direct,
                                                                                                      abs=1e-6)
    lines = _cli("plan", "lite", "convergence", "--results", str(tmp_path / "r"), "--root", str(tmp_path)).stdout
    timing = lite.timing
    gmsrf = round((20 * timing.epoch_s["gmsrf"] + 5 * timing.eval_s["gmsrf"]) / 3600, 2)
    unet = round((20 * timing.epoch_s["unet"] + 5 * timing.eval_s["unet"]) / 3600, 2)
    assert f" {gmsrf:.1f} h  unavailable" in lines.splitlines()[0] and f" {unet:.1f} h  " in lines.splitlines()[1]
    assert f"convergence: {3 * (gmsrf + unet):.1f} h of run time to do" in lines
    assert f"at most {gmsrf:.1f} h per run" in lines and gmsrf < 2.5
    config = lite.runs[0].config  # a partial run: the epochs left and every evaluation
    assert timing.seconds(config, done=15) == 5 * timing.epoch_s["gmsrf"] + 5 * timing.eval_s["gmsrf"]
