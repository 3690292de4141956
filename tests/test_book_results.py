"""The book's view of stored campaign results: coverage, tables, intervals, paired verdicts, paper tables."""
import numpy as np
import pandas as pd
import pytest

from polyplib import book
from polyplib.campaigns import RESULT_FORMAT, Store, campaigns
from polyplib import errors as book_errors

N_SOURCE, N_UNSEEN = 20, 60


def fake_result(spec, rng, unseen_mean: float, profile: str = "lite", campaign: str = "cross-dataset") -> dict:
    """A stored result in the store's format with per-image Dice drawn around known means, as a CPU with native bf16
    stores it (precision=auto resolved)."""
    spec = spec.resolved_on("cpu", True)
    tests = []
    for t, n, mean in ((spec.tests[0], N_SOURCE, 0.8), (spec.tests[1], N_UNSEEN, unseen_mean)):
        dice = np.clip(rng.normal(mean, 0.05, n), 0, 1).round(5)
        ids = [f"{t['key']}-{i}" for i in range(n)]
        tests.append({"key": t["key"], "split": t["split"], "protocol": "gmsrf", "prompt": "none", "n": n,
                      "means": {"dice": float(dice.mean()), "iou": float(dice.mean()) * 0.8},
                      "per_image": {"id": ids, "dice": dice.tolist(), "iou": (dice * 0.8).tolist()}})
    return {"format": RESULT_FORMAT, "run_id": spec.run_id, "profile": profile, "campaign": campaign,
            "spec": spec.to_dict(), "train": {"best_epoch": 3, "best_metric": 0.7, "select": "dice", "epochs": 10,
                                              "history": [{"epoch": 0, "train_loss": 1.0, "val_dice": 0.5}]},
            "provenance": {"commit": "0123456789abcdef+dirty", "machine": "test cpu", "device": "cpu",
                           "date": "2026-12-01T10:00:00+00:00", "train_s": 60.0, "images_per_s": 9.5},
            "tests": tests}


@pytest.fixture
def stored_lite(tmp_path):
    """GMSRF-Net 0.10 Dice better than U-Net on the unseen centre, U-Net++ equal to GMSRF-Net, seeds 0 and 1."""
    rng = np.random.default_rng(0)
    store = Store(tmp_path, "lite", "cross-dataset")
    unseen = {"GMSRF-Net": 0.7, "U-Net": 0.6, "U-Net++": 0.7}
    for spec in campaigns("lite")["cross-dataset"].runs:
        if spec.labels["model"] in unseen and spec.labels["seed"] in (0, 1):
            store.save(fake_result(spec, rng, unseen[spec.labels["model"]]))
    return tmp_path


def test_stored_view_counts_runs_and_names_provenance(stored_lite, tmp_path):
    view = book.stored("lite", "cross-dataset", stored_lite)
    assert view.coverage() == "6 of 12 runs present"
    heading = view.heading()
    assert "0123456789+dirty" in heading and "test cpu" in heading and "from scratch" in heading
    assert "seeds [0, 1]" in heading
    empty = book.stored("lite", "ablations", stored_lite)
    assert "no results stored yet" in empty.heading() and f"0 of {len(campaigns('lite')['ablations'].runs)}" in empty.heading()
    assert book.stored_views("cross-dataset", exclude="lite", results_dir=stored_lite)[0].profile == "full"


def test_tables_intervals_and_paired_verdicts(stored_lite):
    view = book.stored("lite", "cross-dataset", stored_lite)
    frame = view.frame
    assert set(frame.kind) == {"source", "unseen"} and len(frame) == 12
    intervals = book.interval_table(view).set_index(["model", "test"])
    gmsrf = intervals.loc[("GMSRF-Net", "cvc-colondb")]
    seed_mean = book.image_means(view, "cvc-colondb")["GMSRF-Net"].mean()
    assert gmsrf["dice"] == pytest.approx(seed_mean) and gmsrf["images"] == N_UNSEEN
    low, high = (float(x) for x in gmsrf["95% CI"].strip("[]").split(","))
    assert low < 0.7 < high
    paired = book.comparisons(view).set_index("comparison")
    assert list(paired["test"].unique()) == ["cvc-colondb"]  # the unseen centre only
    two = paired.loc["GMSRF-Net − U-Net"]  # clear over images, but two seeds a side leave Welch ~2 dof: not yet
    assert two["ci_low"] > 0 and two["seed p"] > 0.05 and two["outcome"] == "inconclusive"
    rng, store = np.random.default_rng(5), Store(stored_lite, "lite", "cross-dataset")
    unseen = {"GMSRF-Net": 0.7, "U-Net": 0.6, "U-Net++": 0.7}
    for spec in campaigns("lite")["cross-dataset"].runs:
        if spec.labels["model"] in unseen and spec.labels["seed"] == 2:
            store.save(fake_result(spec, rng, unseen[spec.labels["model"]]))
    view = book.stored("lite", "cross-dataset", stored_lite)
    paired = book.comparisons(view).set_index("comparison")
    assert paired.loc["GMSRF-Net − U-Net", "outcome"] == "better"  # units CI and Holm-corrected Welch test agree
    assert paired.loc["GMSRF-Net − U-Net", "Δ dice"] == pytest.approx(0.1, abs=0.02)
    assert paired.loc["GMSRF-Net − U-Net", "units"] == f"{N_UNSEEN} images"  # ids not CVC-ColonDB frames: each its own
    assert paired.loc["GMSRF-Net − U-Net++", "outcome"] == "inconclusive"
    assert paired["Holm p"].min() >= paired["seed p"].min()
    verdict = book.analysis.generalisation_verdict(view)
    assert verdict.outcome == "inconclusive" and "clearly better than: U-Net;" in verdict.text
    assert "could have detected" in verdict.text
    table = book.verdict_table(stored_lite)
    assert table.loc[table.profile == "lite", "verdict"].tolist() == ["inconclusive"]


def test_paper_table_beside_ours_matches_method_source_and_kind(stored_lite):
    view = book.stored("lite", "cross-dataset", stored_lite)
    side = book.paper_side_by_side(view, "gmsrf-table-1").set_index(["method", "kind"])
    row = side.loc[("GMSRF-Net", "unseen")]
    ours = view.frame.query("model == 'GMSRF-Net' and kind == 'unseen'")["dice"].mean()
    assert row["dsc ours"] == pytest.approx(ours) and row["dsc paper"] == 0.8755
    assert row["dsc Δ"] == pytest.approx(ours - 0.8755) and row["our test set"] == "cvc-colondb"
    assert row["test"] == "CVC-ClinicDB"  # the paper's unseen set differs from ours, and the table says so
    assert book.paper_side_by_side(view, "gmsrf-table-2").empty  # no CVC-ClinicDB source run in lite


def test_campaign_view_runs_the_smoke_campaign_into_a_temporary_store(tmp_path):
    settings = book.profile_settings("smoke")
    view = book.campaign(settings, "cross-dataset", only="GMSRF-Net*")
    assert view.coverage() == "1 of 2 runs present" and view.checkpoint(view.results[0].run_id).is_file()
    assert not (book.RESULTS_DIR / "smoke").exists()
    frame = view.frame
    assert set(frame.test) == {"synthpolyp-A", "synthpolyp-B"}
    assert frame.set_index("test").loc["synthpolyp-B", "n"] == settings.synth_n  # the unseen centre: every frame
    assert isinstance(book.recipe_table(view.results[0].spec.config), pd.DataFrame)


def test_figures_of_trained_runs_are_stored_with_provenance_and_picked_by_stored_scores(tmp_path):
    import json

    settings = book.profile_settings("smoke")
    view = book.campaign(settings, "cross-dataset", results_dir=tmp_path / "unused", work=tmp_path / "work")
    results = tmp_path / "results"
    store = Store(results, "smoke", "cross-dataset")
    for result in view.results:  # the live smoke store is temporary: keep its results for the figures
        store.save(result.to_dict())
    written = book.render_figures("smoke", results_dir=results, work=tmp_path / "work")
    assert [p.name for p in written] == ["qualitative-unseen.png", "cmsa-unseen.png"]
    meta = json.loads(written[0].with_suffix(".json").read_text())
    gmsrf = next(r for r in view.results if r.labels["model"] == "GMSRF-Net")
    entry = gmsrf.entry("synthpolyp-B")
    scores = dict(zip(entry.per_image["id"], entry.per_image["dice"]))
    assert scores[meta["ids"]["best"]] == max(scores.values()) and scores[meta["ids"]["worst"]] == min(scores.values())
    assert meta["runs"]["GMSRF-Net"] == gmsrf.run_id and "commit" in meta and meta["test"] == "synthpolyp-B"
    assert all(p.stat().st_size < 400_000 for p in written)
    with pytest.raises(book_errors.ConfigError, match="need the stored runs and checkpoints"):
        book.render_figures("smoke", results_dir=results, work=tmp_path / "elsewhere")


def test_precision_check_is_a_tost_equivalence_test_over_seeds(stored_lite):
    import copy

    rng = np.random.default_rng(1)
    runs = campaigns("lite")["precision"].runs
    assert [r.config["precision"] for r in runs] == ["fp32"] * 3 and [r.labels["seed"] for r in runs] == [0, 1, 2]
    precision = Store(stored_lite, "lite", "precision")
    precision.save(fake_result(runs[0], rng, 0.7, campaign="precision"))

    def check():
        return book.analysis.precision_verdict(book.stored("lite", "precision", stored_lite),
                                      book.stored("lite", "cross-dataset", stored_lite))

    one = check()  # two bf16 seeds against one fp32 seed: no Welch test, so sameness is not shown
    assert one.outcome == "not shown either way" and one.tables["summary"]["TOST p"].isna().all()
    third = next(s for s in campaigns("lite")["cross-dataset"].runs if (s.labels["model"], s.labels["seed"]) ==
                 ("GMSRF-Net", 2))
    Store(stored_lite, "lite", "cross-dataset").save(fake_result(third, rng, 0.7))
    for spec in runs:  # three fp32 seeds far below bf16 on the unseen centre
        precision.save(fake_result(spec, rng, 0.3, campaign="precision"))
    worse = check()
    assert worse.outcome == "different"
    assert worse.tables["summary"].set_index("test").loc["cvc-colondb", "outcome"] == "different"
    for spec in runs:  # fp32 scoring every image exactly as the same bf16 seed did: Δ 0 inside the margin
        bf16 = next(r for r in book.stored("lite", "cross-dataset", stored_lite).results
                    if (r.labels["model"], r.labels["seed"]) == ("GMSRF-Net", spec.labels["seed"]))
        same = copy.deepcopy(bf16.to_dict())
        same.update(run_id=spec.run_id, campaign="precision", spec=spec.to_dict())
        precision.save(same)
    same = check()  # Δ 0, but seeds spread by ~0.014: three a side cannot show |Δ| < 0.02
    assert same.tables["summary"]["Δ (bf16 − fp32)"].abs().max() == 0 and same.outcome == "not shown either way"
    assert (same.tables["summary"]["TOST p"] > 0.05).all()
    claims = book.verdict_table(stored_lite).set_index("claim")
    assert claims.loc[book.analysis.PRECISION, "verdict"] == "not shown either way"
    wide = book.analysis.precision_verdict(book.stored("lite", "precision", stored_lite),
                                           book.stored("lite", "cross-dataset", stored_lite), margin=0.05)
    assert wide.outcome == "equivalent" and (wide.tables["summary"]["TOST p"] < 0.05).all()


def fake_sam_result(spec, rng, gt_mean: float) -> dict:
    """A stored Polyp-SAM result: per test set, GT box around `gt_mean`, 20 % jitter 0.05 lower, box-fill at 0.6,
    the other prompts of the spec (a result has every one) 0.02 lower than the GT box."""
    result = fake_result(spec, rng, gt_mean, campaign="polyp-sam")
    tests = []
    means = {"gt-box": gt_mean, "jitter-0.2": gt_mean - 0.05, "box-fill": 0.6}
    for entry in result["tests"]:
        n = entry["n"]
        for prompt, mean in ((p["name"], means.get(p["name"], gt_mean - 0.02)) for p in spec.prompts):
            dice = np.clip(rng.normal(mean, 0.02, n), 0, 1).round(5)
            tests.append({**entry, "prompt": prompt, "means": {"dice": float(dice.mean())},
                          "per_image": {"id": entry["per_image"]["id"], "dice": dice.tolist()}})
    return {**result, "tests": tests}


def test_polyp_sam_verdicts_wait_for_both_strategies_and_say_when_the_box_beats_the_model(tmp_path):
    rng = np.random.default_rng(2)
    store = Store(tmp_path, "lite", "polyp-sam")
    runs = {(s.labels["strategy"], s.labels["seed"]): s for s in campaigns("lite")["polyp-sam"].runs}
    store.save(fake_sam_result(runs[("decoder", 0)], rng, 0.5))
    view = book.stored("lite", "polyp-sam", tmp_path)
    verdict = book.analysis.sam_strategy_verdict(view)
    assert verdict.outcome == "inconclusive" and "full" in verdict.evidence and not verdict.tables
    text = book.reports.sam_prompt_verdict(view)
    import re
    gt = [float(x) for x in re.findall(r"GT box (\d\.\d+)", text)]
    jitter = [float(x) for x in re.findall(r"20 % jitter ([+-]\d\.\d+)", text)]
    assert len(gt) == len(jitter) == 2 and all(abs(g - 0.5) < 0.01 for g in gt)
    assert all(abs(j + 0.05) < 0.01 for j in jitter)
    assert "(**above** the model)" in text and "2 of 2" in text and "from scratch" in text
    store.save(fake_sam_result(runs[("full", 0)], rng, 0.7))  # full fine-tuning: above its box and the decoder
    view = book.stored("lite", "polyp-sam", tmp_path)
    one_seed = book.analysis.sam_strategy_verdict(view)  # better on these images, but one seed each: no seed test
    table = one_seed.tables["comparisons"]
    assert one_seed.outcome == "inconclusive" and (table["ci_low"] > 0).all() and table["seed p"].isna().all()
    assert "inconclusive by construction" in one_seed.text
    assert "2 of 4" in book.reports.sam_prompt_verdict(view)
    store.save(fake_sam_result(runs[("decoder", 1)], rng, 0.5))
    store.save(fake_sam_result(runs[("full", 1)], rng, 0.7))
    assert book.analysis.sam_strategy_verdict(book.stored("lite", "polyp-sam", tmp_path)).outcome == "supported"
    unseen = "cvc-colondb"  # full fine-tuning no better than decoder-only on the unseen centre: only partly
    for key in (("full", 0), ("full", 1)):
        result = store.find(runs[key]).to_dict()
        for entry in result["tests"]:
            if entry["key"] == unseen:
                entry["per_image"]["dice"] = (np.array(entry["per_image"]["dice"]) - 0.2).round(5).tolist()
                entry["means"]["dice"] = float(np.mean(entry["per_image"]["dice"]))  # a result agrees with itself
        store.save(result)
    partly = book.analysis.sam_strategy_verdict(book.stored("lite", "polyp-sam", tmp_path))
    rows = partly.tables["comparisons"].set_index("test")
    assert rows.loc["kvasir-seg", "outcome"] == "better" and rows.loc["cvc-colondb", "outcome"] == "inconclusive"
    assert partly.outcome == "inconclusive"  # no partial verdicts: the claim is about every test set


def test_ablation_verdict_judges_component_removals_against_seed_noise_and_waits_for_all_of_them(tmp_path):
    from polyplib.campaigns.declared import COMPONENTS

    rng = np.random.default_rng(2)
    cross = Store(tmp_path, "lite", "cross-dataset")
    full = {spec.labels["seed"]: spec for spec in campaigns("lite")["cross-dataset"].runs
            if spec.labels["model"] == "GMSRF-Net"}
    for seed in (0, 1):
        cross.save(fake_result(full[seed], rng, 0.7))
    ablations = Store(tmp_path, "lite", "ablations")
    variants = {spec.labels["model"]: spec for spec in campaigns("lite")["ablations"].runs}
    unseen = {"no CMSA": 0.3, "no MSFS": 0.69, "1 GMSRF module": 0.7, "authors' loss bugs": 0.45}
    for label, mean in unseen.items():
        ablations.save(fake_result(variants[label], rng, mean, campaign="ablations"))

    def verdict():
        return book.ablation_verdict(book.stored("lite", "ablations", tmp_path), [book.stored("lite", "cross-dataset",
                                                                                                tmp_path)])

    first = verdict()  # a component ablation is missing
    assert first.outcome == "inconclusive" and "Not stored: no deep supervision" in first.text
    ablations.save(fake_result(variants["no deep supervision"], rng, 0.7, campaign="ablations"))
    cross.save(fake_result(full[2], rng, 0.8))
    done = verdict()
    table = done.tables["comparisons"].set_index(["test", "comparison"])
    drop = table.loc[("cvc-colondb", "GMSRF-Net − no CMSA")]
    assert drop["ci_low"] > 0 and np.isnan(drop["seed p"]) and drop["outcome"] == "inconclusive"
    assert drop["seed test"] == "none (one seed)" and drop["MDE (80 %)"] > 0
    assert done.outcome == "inconclusive" and "inconclusive by construction" in done.text
    assert "authors' loss bugs" not in done.evidence and "authors' loss bugs" in done.text.split("not judged")[1]
    assert set(COMPONENTS) <= set(table.index.get_level_values(1).str.split(" − ").str[1])
    claims = book.verdict_table(tmp_path).set_index("claim")
    assert claims.loc[done.claim, "verdict"] == "inconclusive"


def test_ablations_are_compared_with_the_full_network_of_their_own_training_recipe(tmp_path):
    rng = np.random.default_rng(3)
    lite = campaigns("lite")
    full = {s.labels["seed"]: s for s in lite["cross-dataset"].runs if s.labels["model"] == "GMSRF-Net"}
    for seed in (0, 1, 2):  # bf16 + channels-last full network far above the fp32 ones on the unseen centre
        Store(tmp_path, "lite", "cross-dataset").save(fake_result(full[seed], rng, 0.9))
    fp32_full = [fake_result(s, rng, 0.6, campaign="precision") for s in lite["precision"].runs]
    for result in fp32_full:
        Store(tmp_path, "lite", "precision").save(result)
    variants = {s.labels["model"]: s for s in lite["ablations"].runs}
    no_cmsa = fake_result(variants["no CMSA"].resolved_on("cpu", False), rng, 0.5, campaign="ablations")  # an AVX2 CPU
    assert no_cmsa["spec"]["config"]["precision"] == "fp32"
    ablations = Store(tmp_path, "lite", "ablations")
    ablations.save(no_cmsa)
    ablations.save(fake_result(variants["no MSFS"], rng, 0.85, campaign="ablations"))  # bf16, as the full ones
    references = [book.stored("lite", n, tmp_path) for n in ("cross-dataset", "precision")]
    verdict = book.ablation_verdict(book.stored("lite", "ablations", tmp_path), references)
    paired = verdict.tables["comparisons"].set_index(["test", "comparison"])
    row = paired.loc[("cvc-colondb", "GMSRF-Net − no CMSA")]
    fp32_mean = np.mean([r["tests"][1]["per_image"]["dice"] for r in fp32_full], axis=0)
    expected = np.mean(fp32_mean - np.array(no_cmsa["tests"][1]["per_image"]["dice"]))
    assert row["Δ dice"] == pytest.approx(expected, abs=1e-9) and row["recipe"] == "fp32 NCHW"
    assert paired.loc[("cvc-colondb", "GMSRF-Net − no MSFS"), "recipe"] == "bf16 + channels-last"
    heading = book.stored("lite", "ablations", tmp_path).heading()
    assert "fp32 NCHW: no CMSA seed 0" in heading and "bf16 + channels-last: no MSFS seed 0" in heading


def test_mixed_model_cross_check_recovers_the_difference_with_crossed_run_and_unit_effects(stored_lite):
    view = book.stored("lite", "cross-dataset", stored_lite)
    table = book.analysis.mixed_model_table(view, "cvc-colondb").set_index("comparison")
    row = table.loc["GMSRF-Net − U-Net"]
    assert row["runs"] == 4 and row["units"] == N_UNSEEN  # two seeds a side, each image its own unit
    assert row["mixed model Δ"] == pytest.approx(row["cluster bootstrap Δ"], abs=1e-6)  # equal-sized units
    low, high = (float(x) for x in row["95% CI (Wald)"].strip("[]").split(","))
    assert low < 0.1 < high and row["Wald p"] < 0.05
    assert table.loc["GMSRF-Net − U-Net++", "Wald p"] > 0.05


def test_learning_curves_average_the_seeds_of_each_model(stored_lite):
    view = book.stored("lite", "cross-dataset", stored_lite)
    fig = book.learning_curves(view)
    assert [ax.get_title() for ax in fig.axes] == ["train loss", "val dice"]
    assert [line.get_label() for line in fig.axes[1].lines] == ["GMSRF-Net", "U-Net", "U-Net++"]
    assert all(list(line.get_xdata()) == [1] and list(line.get_ydata()) == [0.5] for line in fig.axes[1].lines)


def test_a_seed_difference_the_unseen_centres_units_do_not_share_is_named_not_blamed_on_power():
    """Holm p < 0.05 over seeds but the CI over video segments reaches 0: inconclusive, and the verdict says why."""
    from polyplib.book.analysis import _outcome_sentence, _row_outcome

    row = {"test": "cvc-colondb", "comparison": "GMSRF-Net − U-Net", "units": "12 video segments",
           "95% CI (units)": "[-0.13, +0.00]", "ci_low": -0.127, "ci_high": 0.003, "units Δ < 0": "9 of 12",
           "Wilcoxon p (units)": 0.052, "seed test": "Welch t", "Holm p": 0.0057, "MDE (80 %)": 0.033,
           "seed_diff": -0.074}
    table = pd.DataFrame([row])
    table["outcome"] = [_row_outcome(r) for _, r in table.iterrows()]
    assert table["outcome"].tolist() == ["inconclusive"]
    text = _outcome_sentence("inconclusive", table)
    assert "Holm p 0.0057" in text and "reaches 0 (Δ < 0 in 9 of 12" in text and "could have detected" not in text
    table.loc[0, ["ci_high", "95% CI (units)"]] = [-0.01, "[-0.13, -0.01]"]
    table["outcome"] = [_row_outcome(r) for _, r in table.iterrows()]
    assert table["outcome"].tolist() == ["worse"]
    table.loc[0, ["Holm p", "ci_high", "outcome"]] = [0.2, 0.003, "inconclusive"]
    text = _outcome_sentence("inconclusive", table)
    assert "could have detected (80 % power) are 0.03-0.03" in text and "reaches 0" not in text


def test_an_erratum_leaves_the_named_metrics_of_its_runs_out_and_the_heading_says_why(stored_lite):
    import json

    view = book.stored("lite", "cross-dataset", stored_lite)
    wrong = sorted(view.frame["run_id"].unique())[:2]
    folder = stored_lite / "lite" / "cross-dataset"
    (folder / "errata").mkdir()
    (folder / "errata" / "ERRATA.json").write_text(json.dumps({"errata": [{"runs": [*wrong, "not-stored"], "metrics": ["iou"],
                                                                "why": "scored at the wrong size."}]}))
    view = book.stored("lite", "cross-dataset", stored_lite)
    frame = view.frame
    assert frame.loc[frame.run_id.isin(wrong), "iou"].isna().all()
    assert frame.loc[~frame.run_id.isin(wrong), "iou"].notna().all() and frame["dice"].notna().all()
    assert f"**Erratum** (2 runs: {', '.join(wrong)}): scored at the wrong size. Left out of every table: iou." \
        in view.heading()
    assert view.erratum_runs("iou") == {*wrong, "not-stored"} and view.erratum_runs("dice") == set()
    (folder / "errata" / "ERRATA.json").write_text(json.dumps({"errata": [{"runs": wrong}]}))
    with pytest.raises(book_errors.DataError, match="ERRATA.json: not an errata file"):
        book.stored("lite", "cross-dataset", stored_lite)
