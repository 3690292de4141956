"""The book's inference, pure (tables and verdicts, no display): which units are independent, intervals over them,
seed-level tests with their minimum detectable effects, and the three outcomes of a claim.

How a comparison of A and B on one test set is decided (chapter 9, "How we decide"):
- per image, the metric is averaged over each side's seeds; the paired difference gets a 95 % cluster-bootstrap CI
  over the independent units (CVC-ColonDB: its recovered video segments; a still-image test set: its images);
- the run means are compared over training seeds with Welch's t test, Holm-corrected over the comparisons of a claim;
- A is `better` when both the unit CI and the Holm-corrected seed test exclude 0 in A's favour, `worse` when both do
  in B's, else `inconclusive`, with the minimum detectable effect (80 % power) of the seed test. One seed on a side
  gives no seed test: such a comparison is inconclusive by construction.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from polyplib.book.results import CampaignView
from polyplib.campaigns import per_image
from polyplib.campaigns.collect import recipe_name
from polyplib.data.frames import shipped_duplicates, shipped_segments
from polyplib.metrics.boundary import NSD_TOLERANCE, SIZE_BINS, size_class
from polyplib.stats import (ALPHA, EQUIVALENCE_MARGIN, block_length, cluster_bootstrap_ci, contiguous_blocks,
                            equivalence_test, holm, lag1_autocorrelation, paired_comparison, seed_comparison)

REFERENCE = "GMSRF-Net"
GENERALISATION = "GMSRF-Net generalises better to an unseen centre than the baselines"
COMPONENTS_HELP = "each component (CMSA, MSFS, two modules, deep supervision) improves GMSRF-Net"
SAM_FULL = "full fine-tuning beats decoder-only (Polyp-SAM Table 1)"
PRECISION = "bf16 autocast + channels-last trains GMSRF-Net to the accuracy of fp32 (this book's recipe)"
OUTCOMES = ("supported", "contradicted", "inconclusive")
BLOCK_LENGTHS = (1, 5, 10, 25, 50)  # frames: the sensitivity of a CVC-ColonDB interval to the assumed unit


@dataclasses.dataclass
class Verdict:
    """A claim, its outcome (supported / contradicted / inconclusive, or for sameness equivalent / different / not
    shown either way), the evidence in one line, the prose, and the tables behind it."""

    claim: str
    outcome: str
    evidence: str
    text: str
    tables: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)


def units(test: str, ids: Any) -> tuple[np.ndarray, str]:
    """Independent-unit labels of the frames `ids` of a test set, and their name: the recovered video segments of
    CVC-ColonDB (`polyplib datasets segments`), else each image on its own."""
    segments = shipped_segments(test)
    ids = [str(i) for i in ids]
    if segments is not None and all(i in segments for i in ids):
        return np.array([segments[i] for i in ids]), "video segments"
    return pd.factorize(pd.Series(ids))[0], "images"


def image_means(view: CampaignView, test: str, prompt: str = "none", by: str = "model",
                metric: str = "dice") -> pd.DataFrame:
    """Per image, the metric averaged over seeds: rows = images (file order), columns = groups (`by`)."""
    scores = per_image(view.results, test, prompt)
    if scores.empty or metric not in scores:
        return pd.DataFrame()
    return scores.groupby(["id", by], sort=False)[metric].mean().unstack(by)


def interval_table(view: CampaignView, metric: str = "dice", prompt: str = "none", by: str = "model") -> pd.DataFrame:
    """Mean over images of the seed-averaged metric with its 95 % CI over the independent units, per group and test."""
    rows = []
    for test in dict.fromkeys(view.frame["test"]):
        table = image_means(view, test, prompt, by, metric)
        for group in table.columns:
            scores = table[group].dropna()
            labels, unit = units(test, scores.index)
            low, high = cluster_bootstrap_ci(scores, labels)
            rows.append({by: group, "test": test, "images": len(scores), "units": f"{len(set(labels))} {unit}",
                         metric: scores.mean(), "95% CI": f"[{low:.2f}, {high:.2f}]"})
    return pd.DataFrame(rows)


def _run_means(view: CampaignView, test: str, prompt: str) -> pd.DataFrame:
    """The stored run means (one row per run) on one test set and prompt."""
    frame = view.frame
    frame = frame[frame["prompt"] == prompt] if "prompt" in frame else frame
    return frame[frame["test"] == test]


def comparisons(view: CampaignView, reference: str = REFERENCE, metric: str = "dice", prompt: str = "none",
                by: str = "model", tests: tuple[str, ...] | None = None) -> pd.DataFrame:
    """`reference` against every other group on each test set: paired Δ with its CI over units, the Welch seed test
    (Holm-corrected over all rows, the comparisons of one claim), its MDE, and the row's outcome."""
    frame = view.frame
    tests = tests or tuple(dict.fromkeys(frame.loc[frame["kind"] == "unseen", "test"])) or tuple(frame["test"].unique())
    rows = []
    for test in tests:
        table = image_means(view, test, prompt, by, metric).dropna()
        if reference not in table:
            continue
        labels, unit = units(test, table.index)
        runs = _run_means(view, test, prompt)
        for other in (c for c in table.columns if c != reference):
            paired = paired_comparison(table[reference], table[other], labels)
            seeds = seed_comparison(*(runs.loc[runs[by] == g, metric] for g in (reference, other)))
            rows.append({"test": test, "comparison": f"{reference} − {other}", "images": paired["n"],
                         "units": f"{paired['units']} {unit}", f"Δ {metric}": paired["diff"],
                         "95% CI (units)": f"[{paired['ci_low']:+.2f}, {paired['ci_high']:+.2f}]",
                         "ci_low": paired["ci_low"], "ci_high": paired["ci_high"],
                         "units Δ < 0": f"{paired['units_negative']} of {paired['units']}", "Wilcoxon p (units)":
                         paired["wilcoxon_p"], "seeds": f"{seeds['n_a']} v {seeds['n_b']}", "seed test": seeds["test"],
                         "seed p": seeds["p"], "MDE (80 %)": seeds["mde"], "seed_diff": seeds["diff"]})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["Holm p"] = holm(out["seed p"].tolist())
    out["outcome"] = [_row_outcome(r) for _, r in out.iterrows()]
    return out


def _row_outcome(row: pd.Series) -> str:
    if not row["Holm p"] < ALPHA:  # nan (one seed) or not significant
        return "inconclusive"
    if row["ci_low"] > 0 and row["seed_diff"] > 0:
        return "better"
    if row["ci_high"] < 0 and row["seed_diff"] < 0:
        return "worse"
    return "inconclusive"


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """A comparisons table without its machine columns, for display."""
    return table.drop(columns=[c for c in ("ci_low", "ci_high", "seed_diff") if c in table])


def _claim_outcome(table: pd.DataFrame) -> str:
    """`supported` when the reference is better in every row, `contradicted` when it is worse in any, else inconclusive."""
    if (table["outcome"] == "worse").any():
        return "contradicted"
    return "supported" if (table["outcome"] == "better").all() else "inconclusive"


def _name(row: pd.Series) -> str:
    return row["comparison"].split(" − ", 1)[1]


def _evidence(row: pd.Series, metric: str = "dice") -> str:
    holm_p = "no seed test (one seed)" if not np.isfinite(row["Holm p"]) else f"Holm p {row['Holm p']:.2g}"
    mde = f", MDE {row['MDE (80 %)']:.2f}" if np.isfinite(row["MDE (80 %)"]) else ""
    return (f"{row['comparison']} on {row['test']}: Δ {row[f'Δ {metric}']:+.3f}, CI over {row['units'].split(' ', 1)[1]} "
            f"{row['95% CI (units)']}, {row['seeds']} seeds, {holm_p}{mde}")


def _outcome_sentence(outcome: str, table: pd.DataFrame) -> str:
    undecided = table[table["outcome"] == "inconclusive"]
    across = undecided[undecided["Holm p"] < ALPHA]  # the seeds differ, the unseen centre's units do not agree
    mdes = undecided.loc[~(undecided["Holm p"] < ALPHA), "MDE (80 %)"].dropna()
    smallest = (f" The smallest differences these seeds could have detected (80 % power) are "
                f"{mdes.min():.2f}-{mdes.max():.2f} Dice." if len(mdes) else "")
    split = "".join(f" {r['comparison']} on {r['test']}: the seed test finds a difference (Holm p {r['Holm p']:.2g}), "
                    f"but the 95 % CI over {r['units']} {r['95% CI (units)']} reaches 0 (Δ < 0 in "
                    f"{r['units Δ < 0']}, Wilcoxon p {r['Wilcoxon p (units)']:.2g}): the difference holds for "
                    f"these training seeds but is not shown to hold across the unseen centre's videos."
                    for _, r in across.iterrows())
    single = " Comparisons with a single seed on a side are inconclusive by construction." \
        if (undecided["seed test"] != "Welch t").any() else ""
    return f"Verdict: **{outcome}**." + (smallest + split + single if outcome == "inconclusive" else "")


def generalisation_verdict(view: CampaignView) -> Verdict:
    """The paper's claim (GMSRF-Net generalises better to an unseen centre) on the unseen test sets of a campaign."""
    table = comparisons(view)
    if table.empty:
        return Verdict(GENERALISATION, "inconclusive", "not measured", "No GMSRF-Net comparison yet.")
    outcome = _claim_outcome(table)
    better = [_name(r) for _, r in table.iterrows() if r["outcome"] == "better"]
    worse = [_name(r) for _, r in table.iterrows() if r["outcome"] == "worse"]
    caveat = " (synthetic frames and a few steps: this checks the analysis, not the methods)" \
        if view.profile == "smoke" else ""
    text = (f"**What the `{view.profile}` results say{caveat}.** On the unseen centre, {REFERENCE} minus each "
            f"baseline: " + "; ".join(_evidence(r) for _, r in table.iterrows()) + ". "
            f"{REFERENCE} is clearly better than: {', '.join(better) or 'none'}; clearly worse than: "
            f"{', '.join(worse) or 'none'}. " + _outcome_sentence(outcome, table) + f" ({view.coverage()})")
    return Verdict(GENERALISATION, outcome, "; ".join(_evidence(r) for _, r in table.iterrows()), text,
                   {"comparisons": table})


def gap_table(view: CampaignView, metric: str = "dice", by: str = "model") -> pd.DataFrame:
    """Generalisation gap (source − unseen) per model: mean over seeds with the t interval over seeds (the seed is
    the unit: each retraining gives one gap)."""
    from scipy import stats

    frame = view.frame
    rows = []
    for name, part in frame.groupby(by, sort=False):
        per_seed = part.pivot_table(index="seed", columns="kind", values=metric, aggfunc="mean")
        if not {"source", "unseen"} <= set(per_seed.columns):
            continue
        gaps = (per_seed["source"] - per_seed["unseen"]).dropna()
        half = stats.t.ppf(0.975, len(gaps) - 1) * gaps.std(ddof=1) / np.sqrt(len(gaps)) if len(gaps) > 1 else np.nan
        rows.append({by: name, "seeds": len(gaps), "source": per_seed["source"].mean(),
                     "unseen": per_seed["unseen"].mean(), "gap": gaps.mean(),
                     "95% CI (seeds)": f"[{gaps.mean() - half:.2f}, {gaps.mean() + half:.2f}]" if len(gaps) > 1 else "–"})
    return pd.DataFrame(rows)


def leak_table(view: CampaignView, metric: str = "dice", by: str = "model") -> pd.DataFrame:
    """Source test images with a near-duplicate outside the test split (`polyplib datasets duplicates`), and each
    group's mean with and without them: how much the leak can move the seen-centre score."""
    frame = view.frame
    rows = []
    for test in dict.fromkeys(frame.loc[frame["kind"] == "source", "test"]):
        pairs = shipped_duplicates(test)
        table = image_means(view, test, by=by, metric=metric)
        present = set(table.index.astype(str))
        leaked = sorted({a if a in present else b for a, b in pairs if (a in present) != (b in present)})
        if not leaked:
            continue
        for group in table.columns:
            kept = table.loc[~table.index.astype(str).isin(leaked), group]
            rows.append({by: group, "test": test, "leaked images": len(leaked), f"{metric} (all)": table[group].mean(),
                         f"{metric} (without leaked)": kept.mean(), "Δ": table[group].mean() - kept.mean()})
    return pd.DataFrame(rows)


def unit_sensitivity(view: CampaignView, test: str, reference: str = REFERENCE, by: str = "model",
                     metric: str = "dice") -> pd.DataFrame:
    """How the CI of `reference` − each other group on one video test set depends on the unit resampled: frames (as
    if independent), contiguous blocks of several lengths, the Politis-White length, and the recovered segments."""
    table = image_means(view, test, by=by, metric=metric).dropna()
    if reference not in table:
        return pd.DataFrame()
    rows = []
    for other in (c for c in table.columns if c != reference):
        diff = (table[reference] - table[other]).to_numpy()
        auto = block_length(diff)
        designs = [(f"blocks of {n}" if n > 1 else "frames (independent)", contiguous_blocks(len(diff), n))
                   for n in sorted({*BLOCK_LENGTHS, auto})]
        labels, unit = units(test, table.index)
        if unit == "video segments":
            designs.append(("recovered video segments", labels))
        for name, clusters in designs:
            low, high = cluster_bootstrap_ci(diff, clusters)
            rows.append({"comparison": f"{reference} − {other}", "unit": name + (" (Politis-White)" if name ==
                         f"blocks of {auto}" else ""), "units": len(set(clusters.tolist())), "Δ": diff.mean(),
                         "95% CI": f"[{low:+.2f}, {high:+.2f}]", "CI width": high - low,
                         "lag-1 autocorrelation": lag1_autocorrelation(diff)})
    return pd.DataFrame(rows)


def mixed_model_table(view: CampaignView, test: str, reference: str = REFERENCE, by: str = "model",
                      metric: str = "dice") -> pd.DataFrame:
    """Cross-check of the verdict's evidence with one model for both sources of variation: a linear mixed model
    (`statsmodels` MixedLM, REML) of the run-by-unit mean metric with a fixed effect for `reference` and crossed random
    intercepts for the training run and the unit (video segment), beside the cluster-bootstrap CI of the same
    comparison. Units are weighted equally here (the bootstrap weights frames), and the model's Wald test has no
    small-sample correction for the few runs per model: it is shown, not used for verdicts."""
    import warnings

    import statsmodels.formula.api as smf

    scores = per_image(view.results, test)
    if scores.empty or reference not in set(scores[by]):
        return pd.DataFrame()
    scores = scores.assign(unit=units(test, scores["id"])[0])
    boot = comparisons(view, reference, metric, by=by, tests=(test,)).set_index("comparison")
    rows = []
    for other in (g for g in dict.fromkeys(scores[by]) if g != reference):
        pair = scores[scores[by].isin([reference, other])]
        cells = pair.groupby([by, "run_id", "unit"], as_index=False)[metric].mean()
        cells["is_reference"], cells["all"] = (cells[by] == reference).astype(float), 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter of the variance components on few runs
            fit = smf.mixedlm(f"{metric} ~ is_reference", cells, groups="all",
                              vc_formula={"run": "0 + C(run_id)", "unit": "0 + C(unit)"}).fit(reml=True)
        low, high = fit.conf_int().loc["is_reference"]
        name = f"{reference} − {other}"
        rows.append({"comparison": name, "runs": cells["run_id"].nunique(), "units": cells["unit"].nunique(),
                     "mixed model Δ": fit.fe_params["is_reference"], "95% CI (Wald)": f"[{low:+.2f}, {high:+.2f}]",
                     "Wald p": fit.pvalues["is_reference"],
                     "cluster bootstrap Δ": boot.loc[name, f"Δ {metric}"] if name in boot.index else np.nan,
                     "95% CI (bootstrap)": boot.loc[name, "95% CI (units)"] if name in boot.index else "–",
                     "Welch p (seeds)": boot.loc[name, "seed p"] if name in boot.index else np.nan})
    return pd.DataFrame(rows)


def report_card(view: CampaignView, prompt: str = "none", by: str = "model") -> pd.DataFrame:
    """Per group and test set: Dice, HD95 and NSD (% of the frame diagonal; NSD tolerance `NSD_TOLERANCE` %), frames
    with an empty prediction or ground truth, and Dice by polyp size; results stored before the report card existed
    show what they have and say what is missing."""
    rows = []
    for test in dict.fromkeys(view.frame["test"]):
        scores = per_image(view.results, test, prompt)
        if scores.empty:
            continue
        for group, part in scores.groupby(by, sort=False):
            row = {by: group, "test": test, "images": part["id"].nunique(), "dice": part["dice"].mean()}
            if "hd95" not in part:
                rows.append({**row, "missing": "HD95, NSD, polyp area (stored before the report card)"})
                continue
            valid = part[~part["run_id"].isin(view.erratum_runs("hd95"))]  # runs whose distances are known wrong
            hd95 = pd.to_numeric(valid["hd95"], errors="coerce")
            row.update({"HD95 (% diag)": hd95.median(), "NSD": pd.to_numeric(valid["nsd"], errors="coerce").mean(),
                        "HD95 undefined": int(hd95.isna().sum()), "HD95/NSD runs": valid["run_id"].nunique(),
                        "empty predictions": int(part["pred_empty"].sum())})
            sizes = part["area"].map(size_class)
            for name in ("small", "medium", "large"):
                chosen = part.loc[sizes == name, "dice"]
                row[f"dice {name} (n)"] = f"{chosen.mean():.3f} ({len(chosen)})" if len(chosen) else "– (0)"
            row["empty ground truth"] = int((sizes == "empty").sum())
            rows.append(row)
    return pd.DataFrame(rows)


REPORT_CARD_NOTE = (f"HD95 (median over images) and NSD (tolerance {NSD_TOLERANCE:g} % of the frame diagonal) by "
                    "MONAI at the original resolution, distances in percent of the frame diagonal; HD95 is undefined "
                    "where the prediction or the ground truth is empty (counted, not dropped silently). Polyp size "
                    f"by ground-truth area fraction: small < {SIZE_BINS[1]:.0%} <= medium < {SIZE_BINS[2]:.0%} <= "
                    "large.")


def ablation_verdict(groups: list[tuple[str, CampaignView]], components: tuple[str, ...], profile: str) -> Verdict:
    """Each removed component against the full network of its own recipe: the claim holds when removing every
    component clearly lowers Dice on a test set, fails when removing one clearly raises it."""
    tables = []
    for recipe, group in groups:
        table = comparisons(group, tests=tuple(dict.fromkeys(group.frame["test"])))
        if not table.empty:
            tables.append(table.assign(recipe=recipe))
    if not tables:
        return Verdict(COMPONENTS_HELP, "inconclusive", "not measured", "No paired comparison yet.")
    table = pd.concat(tables, ignore_index=True)
    table["Holm p"] = holm(table["seed p"].tolist())  # one claim: correct over every component and test set
    table["outcome"] = [_row_outcome(r) for _, r in table.iterrows()]
    table["variant"] = [_name(r) for _, r in table.iterrows()]
    judged = table[table["variant"].isin(components)]
    helps = [c for c in components if (judged.loc[judged["variant"] == c, "outcome"] == "better").any()]
    hurts = [c for c in components if (judged.loc[judged["variant"] == c, "outcome"] == "worse").any()]
    missing = [c for c in components if c not in set(judged["variant"])]
    outcome = ("contradicted" if hurts else "supported" if len(helps) == len(components) and not missing
               else "inconclusive")
    others = table[~table["variant"].isin(components)]
    text = (f"**What the `{profile}` ablations say.** Full GMSRF-Net minus each variant (same recipe): "
            + "; ".join(_evidence(r) for _, r in judged.iterrows())
            + f". Removing it clearly lowers Dice for: {', '.join(helps) or 'none'}; clearly raises it for: "
              f"{', '.join(hurts) or 'none'}."
            + (f" Paper's text vs the authors' code (not judged): "
               + "; ".join(_evidence(r) for _, r in others.iterrows()) + "." if not others.empty else "")
            + (f" Not stored: {', '.join(missing)}." if missing else "") + " "
            + _outcome_sentence(outcome, judged if not judged.empty else table))
    evidence = f"clearly helps: {', '.join(helps) or 'none'}; " + "; ".join(_evidence(r) for _, r in judged.iterrows())
    return Verdict(COMPONENTS_HELP, outcome, evidence, text, {"comparisons": table.drop(columns="variant")})


def sam_strategy_verdict(view: CampaignView) -> Verdict:
    """Full fine-tuning against decoder-only with ground-truth boxes, on every test set (Holm over the test sets)."""
    tests = tuple(dict.fromkeys(view.frame["test"]))
    table = comparisons(view, reference="full", prompt="gt-box", by="strategy", tests=tests)
    if table.empty:
        missing = {"decoder", "full"} - set(view.frame["strategy"])
        return Verdict(SAM_FULL, "inconclusive", f"not measured ({', '.join(sorted(missing))} not stored yet)",
                       f"**What the `{view.profile}` results say.** Nothing to compare yet ({view.coverage()}).")
    outcome = _claim_outcome(table)
    scratch = (" Without SAM's pretraining a decoder-only run trains the prompt encoder and mask decoder on a "
               "**frozen random** image encoder: this measures what a random projection of the image gives, not SAM."
               if view.settings.from_scratch else "")
    text = (f"**What the `{view.profile}` results say.** Full minus decoder-only fine-tuning, ground-truth boxes: "
            + "; ".join(_evidence(r) for _, r in table.iterrows()) + ". " + _outcome_sentence(outcome, table) + scratch)
    return Verdict(SAM_FULL, outcome, "; ".join(_evidence(r) for _, r in table.iterrows()), text,
                   {"comparisons": table})


def _mean_sd_text(values: np.ndarray) -> str:
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f} ({len(values)})" if len(values) > 1 else \
        f"{values.mean():.3f} (1)"


def precision_verdict(view: CampaignView, reference: CampaignView,
                      margin: float = EQUIVALENCE_MARGIN) -> Verdict | None:
    """The fp32 NCHW runs against the bf16 + channels-last GMSRF-Net runs: TOST equivalence of the seed means within
    +-`margin` Dice on each test set (`equivalent` on all, `different` on any, else `not shown either way`)."""
    bf16 = [r for r in reference.results if r.labels.get("model") == REFERENCE
            and recipe_name(r).startswith("bf16")]
    if not view.results or not bf16:
        return None
    both = CampaignView(view.settings, view.campaign, [*bf16, *view.results], view.work)
    frame, fp32_label = both.frame, view.results[0].labels["model"]
    rows = []
    for test in dict.fromkeys(frame["test"]):
        part = frame[frame["test"] == test]
        a, b = (part.loc[part["model"] == m, "dice"].to_numpy() for m in (REFERENCE, fp32_label))
        t = equivalence_test(a, b, margin)
        rows.append({"test": test, "bf16 + channels-last": _mean_sd_text(a), "fp32 NCHW": _mean_sd_text(b),
                     "Δ (bf16 − fp32)": t["diff"],
                     "90% CI (seeds)": f"[{t['ci_low']:+.3f}, {t['ci_high']:+.3f}]", "TOST p": t["tost_p"],
                     "Welch p": t["p"], "outcome": t["outcome"]})
    table = pd.DataFrame(rows)
    outcome = ("equivalent" if (table["outcome"] == "equivalent").all() else "different"
               if (table["outcome"] == "different").any() else "not shown either way")
    evidence = "; ".join(f"{r['test']} Δ {r['Δ (bf16 − fp32)']:+.3f}, 90% CI {r['90% CI (seeds)']}, TOST p "
                         f"{r['TOST p']:.2g}" for r in rows)
    text = (f"**bf16 autocast + channels-last vs fp32 NCHW ({view.profile}).** Equivalence margin ±{margin:.2f} Dice, "
            f"stated before the runs were compared; TOST with Welch's t over seeds: {evidence}. The recipes are "
            f"**{outcome}**" + {"equivalent": ": the 90 % CI of the difference lies inside the margin on every test set.",
                               "different": ": a difference stands out of the spread over seeds.",
                               "not shown either way": ": the 90 % CI of the difference reaches past the margin, and "
                                                       "no difference stands out either; the seeds are too few or "
                                                       "too spread to show sameness."}[outcome])
    return Verdict(PRECISION, outcome, evidence, text, {"summary": table})
