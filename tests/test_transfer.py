"""The `transfer` campaign (Polyp-SAM's question on a pretrained model): sequence folds, runs that start from another
run's weights, and the arm comparisons of the book."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from polyplib.book import transfer
from polyplib.campaigns import RunResult, Store
from polyplib.campaigns.declared import campaigns, pretraining_run, transfer_run
from polyplib.campaigns.execute import execute, work_dir
from polyplib.campaigns.profiles import profile_settings
from polyplib.campaigns.spec import RunSpec
from polyplib.data.frames import sequence_folds, shipped_segments
from polyplib.engine.checkpoint import load_checkpoint
from polyplib.errors import DataError

SEGMENTS = shipped_segments("cvc-colondb")


def test_sequence_folds_never_share_a_video_segment():
    ids = list(SEGMENTS)
    budgets = []
    for fold in range(3):
        split = sequence_folds(ids, SEGMENTS, fold)
        parts = {part: {SEGMENTS[i] for i in chosen} for part, chosen in split.items()}
        assert sorted(i for chosen in split.values() for i in chosen) == sorted(ids)  # every frame once
        assert not parts["train"] & parts["test"] and not parts["val"] & parts["test"] and not parts["train"] & parts["val"]
        assert len(parts["val"]) == 1 and len(parts["train"]) == 3 and len(parts["test"]) == 8
        budgets.append(parts["train"] | parts["val"])
    assert sorted(s for b in budgets for s in b) == sorted(set(SEGMENTS.values()))  # each segment labelled once


def test_sequence_folds_without_segments_treat_each_image_as_a_unit_and_refuse_bad_input():
    ids = [str(i) for i in range(40)]
    split = sequence_folds(ids, None, 1)
    assert [len(split[p]) for p in ("train", "val", "test")] == [9, 4, 27]
    assert split["val"] == ["28", "31", "34", "37"]
    with pytest.raises(DataError, match="fold 3"):
        sequence_folds(ids, None, 3)
    with pytest.raises(DataError, match="no video segment"):
        sequence_folds(["1", "not-a-frame"], SEGMENTS, 0)


def test_a_run_started_from_another_names_it_in_its_identity():
    settings = profile_settings("lite")
    pre = pretraining_run(settings)
    arm = transfer_run(settings, "lora", 1, 1)
    assert arm.pretrained().run_id == pre.run_id
    assert RunSpec.from_dict(arm.to_dict()).run_id == arm.run_id
    alone = dataclasses.replace(arm, init=None)
    assert alone.run_id != arm.run_id and "init" not in alone.identity()
    other = transfer_run(dataclasses.replace(settings, transfer=dataclasses.replace(
        settings.transfer, pretrain={**settings.transfer.pretrain, "epochs": 31})), "lora", 1, 1)
    assert other.run_id != arm.run_id  # another pretraining is another run
    assert arm.config["dataset_options"] == {"split_seed": 1} and arm.tests[0]["protocol"] == "sequences"
    declared = campaigns("lite")["transfer"]
    assert declared.runs[0].run_id == pre.run_id and len(declared.runs) == 10
    assert {s.config["dataset_options"]["split_seed"] for s in declared.runs[1:]} == {0, 1, 2}


def test_precision_auto_resolves_in_the_run_it_starts_from_too():
    settings = profile_settings("lite")
    auto = dataclasses.replace(settings, transfer=dataclasses.replace(settings.transfer, pretrain={}))
    arm = transfer_run(auto, "full", 0, 0).resolved_on("cpu", True)
    assert arm.pretrained().config["precision"] == "bf16"
    assert transfer_run(auto, "full", 0, 0).resolved_on("cpu", False).pretrained().config["precision"] == "fp32"


def _encoder(path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)["model"]
    return {k: v for k, v in state.items() if k.startswith("sam.image_encoder.")}


def test_a_transfer_run_starts_from_the_selected_weights_of_its_pretraining_run(tmp_path):
    settings = profile_settings("smoke")
    arm = transfer_run(settings, "decoder", 0, 0)
    arm = dataclasses.replace(arm, prompts=arm.prompts[:1])  # ground-truth boxes only
    store = Store(tmp_path / "results", "smoke", "transfer")
    outcome = execute(arm, store, work=tmp_path / "work", threads=1)
    assert outcome.status == "done"
    result = store.find(arm)
    pre = arm.pretrained()
    assert result.pretraining.run_id == pre.run_id and result.to_dict()["pretraining"]["run_id"] == pre.run_id
    start = _encoder(work_dir(tmp_path / "work", pre.run_id) / "train" / "best.pt")
    tuned = _encoder(work_dir(tmp_path / "work", arm.run_id) / "train" / "best.pt")
    assert start.keys() == tuned.keys() and all(torch.equal(start[k], tuned[k]) for k in start)  # frozen, loaded
    from polyplib.models import create_architecture

    fresh = create_architecture(arm.config["model"], **arm.config["model_options"]).state_dict()
    assert not all(torch.equal(fresh[k], start[k]) for k in start)  # not the model's own initialisation


LITE = profile_settings("lite")


def _result(strategy, fold, ids, dice, pretraining=True):
    """A stored result of the lite transfer campaign with fabricated ground-truth-box scores (the pretraining run's
    on every CVC-ColonDB frame, an arm's on its fold's held-out frames)."""
    spec = transfer_run(LITE, strategy, fold, fold) if pretraining else pretraining_run(LITE)
    split, protocol = ("test", "sequences") if pretraining else (None, "gmsrf")
    entry = {"key": "cvc-colondb", "split": split, "protocol": protocol, "prompt": "gt-box", "n": len(ids),
             "means": {"dice": float(np.mean(dice)), "monaiDice": float(np.mean(dice)) - 0.01},
             "per_image": {"id": list(ids), "dice": list(dice), "monaiDice": [d - 0.01 for d in dice]}}
    fill = {**entry, "prompt": "box-fill", "means": {"dice": 0.56}, "per_image": {"id": list(ids), "dice": [0.56] * len(ids)}}
    data = {"run_id": spec.run_id, "profile": "lite", "campaign": "transfer", "spec": spec.to_dict(), "provenance": {},
            "train": {"best_epoch": 1, "best_metric": 0.5, "select": "dice", "epochs": 20,
                      "history": [{"step": 10 * (k + 1), "train_time_s": 5.0, "peak_mem_mb": 100.0, "val_dice": v}
                                  for k, v in enumerate((0.3, 0.5, 0.6, 0.61, 0.6, 0.62, 0.615))]},
            "tests": [entry, fill]}
    if pretraining:
        data["pretraining"] = {"run_id": spec.pretrained().run_id, "best_epoch": 25, "select": "dice",
                               "best_metric": 0.6, "train_s": 100.0}
    return RunResult.from_dict(data, "fabricated.json")


def _campaign(gain_full: float, gain_lora: float, seed: int = 0) -> list[dict]:
    """Three folds of CVC-ColonDB; decoder-only at a base Dice per segment, full and LoRA above it by the gains."""
    rng = np.random.default_rng(seed)
    everything = list(SEGMENTS)
    zero = {i: 0.5 + 0.02 * (SEGMENTS[i] % 5) for i in everything}
    results = [_result("full", 0, everything, [zero[i] for i in everything], pretraining=False)]
    for fold in range(3):
        ids = sequence_folds(everything, SEGMENTS, fold)["test"]
        base = np.array([zero[i] + 0.05 for i in ids]) + rng.normal(0, 0.01, len(ids))
        seg_noise = {s: rng.normal(0, 0.004) for s in set(SEGMENTS.values())}
        noise = np.array([seg_noise[SEGMENTS[i]] for i in ids])
        results += [_result("decoder", fold, ids, base),
                    _result("full", fold, ids, base + gain_full + noise),
                    _result("lora", fold, ids, base + gain_full + gain_lora + noise[::-1])]
    return results


def test_zero_shot_rows_are_the_pretrained_scores_on_each_folds_held_out_images():
    results = _campaign(0.1, 0.0)
    frame = transfer.transfer_frame(results)
    for fold in range(3):
        held = set(sequence_folds(list(SEGMENTS), SEGMENTS, fold)["test"])
        zero = frame[(frame["arm"] == "zero-shot") & (frame["fold"] == fold)]
        assert set(zero["id"]) == held
        assert zero["value"].to_numpy() == pytest.approx([0.5 + 0.02 * (SEGMENTS[i] % 5) for i in zero["id"]])
    assert frame.attrs["units"] == "video segments"
    assert set(frame.loc[frame["arm"] == "decoder", "unit"]) == set(SEGMENTS.values())


def test_a_clear_gain_of_full_fine_tuning_is_supported_and_lora_at_the_same_level_is_equivalent():
    verdicts = transfer.transfer_verdicts(_campaign(0.1, 0.0), "lite")
    full, lora = verdicts
    assert full.outcome == "supported" and "full − decoder +0.100" in full.evidence
    assert lora.outcome == "equivalent"
    table = transfer.comparison_table(_campaign(0.1, 0.0))
    row = table[table["comparison"] == "decoder − zero-shot"].iloc[0]
    assert row["diff"] == pytest.approx(0.05, abs=0.005) and row["units"] == 12 and row["folds"] == 3


def test_a_loss_is_contradicted_and_a_large_lora_gap_is_not_equivalent():
    full, lora = transfer.transfer_verdicts(_campaign(-0.1, 0.08), "lite")
    assert full.outcome == "contradicted"
    assert lora.outcome == "different"


def test_the_arm_table_counts_what_each_arm_trains():
    table = transfer.arm_table(_campaign(0.1, 0.0)).set_index("arm")
    assert list(table.index) == ["zero-shot", "decoder", "lora", "full"]
    trained = table["trainable parameters"]
    assert trained["zero-shot"] == 0 < trained["decoder"] < trained["lora"] < trained["full"]
    assert table.loc["full", "dice mean"] == pytest.approx(table.loc["decoder", "dice mean"] + 0.1, abs=1e-3)
    assert table.loc["decoder", "s/step"] == pytest.approx(0.5) and math.isnan(table.loc["zero-shot", "s/step"])
    assert table.loc["full", "selected epoch (val Dice)"] == "1/20 (0.500), 1/20 (0.500), 1/20 (0.500)"
    assert table.loc["zero-shot", "selected epoch (val Dice)"] == ""
    assert table["monaiDice mean"].to_numpy() == pytest.approx(table["dice mean"].to_numpy() - 0.01)


def test_the_pretrained_model_is_reported_with_its_plateau_check():
    results = _campaign(0.1, 0.0)
    row = transfer.pretraining_table(results).iloc[0]
    assert row["test"] == "cvc-colondb" and row["images"] == len(SEGMENTS)
    assert row["monaiDice"] == pytest.approx(row["dice"] - 0.01) and row["box-fill dice"] == 0.56
    assert row["val gain, last 5"] == pytest.approx(0.62 - 0.5)  # last five epochs' best over the first two's
    assert transfer.pretraining_table(results[1:]).empty  # no pretraining run stored: nothing to report


def test_paired_seed_comparison_is_the_paired_t_test_with_its_power_and_tost():
    from scipy import stats as sps
    from statsmodels.stats.weightstats import ttost_paired

    from polyplib.stats import paired_seed_comparison

    a, b = np.array([0.70, 0.74, 0.69]), np.array([0.61, 0.66, 0.64])
    out = paired_seed_comparison(a, b)
    d = a - b
    se = d.std(ddof=1) / math.sqrt(3)
    assert out["diff"] == pytest.approx(d.mean()) and out["p"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert out["mde"] == pytest.approx((sps.t.ppf(0.975, 2) + sps.t.ppf(0.8, 2)) * se)
    assert out["ci_low"] == pytest.approx(d.mean() - sps.t.ppf(0.975, 2) * se)
    assert out["tost_p"] == pytest.approx(ttost_paired(a, b, -0.02, 0.02)[0]) and out["outcome"] == "different"
    assert paired_seed_comparison(a[:1], b[:1])["test"] == "none (one seed)"


def test_arms_wait_for_the_run_they_start_from(tmp_path):
    from polyplib.campaigns.runner import Context, _payloads, _ready

    declared = campaigns("lite")["transfer"]
    ctx = Context(results=str(tmp_path / "r"), root=None, work=str(tmp_path / "w"), device="cpu")
    todo = _payloads([declared], ctx, None, None)
    assert todo[0]["id"] == declared.runs[0].run_id and todo[0]["needs"] is None
    assert all(p["needs"] == todo[0]["id"] for p in todo[1:])
    first = _ready(todo, {})
    assert first is todo[0]
    assert _ready(todo[1:], {"job": first}) is None  # every arm waits while the pretraining run trains
    assert _ready(todo[1:], {}) is todo[1]


def test_each_arm_is_read_against_the_box_it_was_prompted_with():
    text = transfer.box_fill_reading(_campaign(0.1, 0.0))  # box 0.56; zero-shot 0.53, decoder 0.58, full 0.68
    assert "Filling the ground-truth box scores 0.560 Dice" in text
    above, below = text.split("Above it: ")[1].split("Not above it: ")
    assert "decoder" in above and "lora" in above and "full" in above and "zero-shot" in below
    assert transfer.box_fill_reading([]) == ""
