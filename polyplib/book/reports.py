"""What each chapter shows of a campaign view: tables (mean ± sd), intervals, paired tests, figures, verdicts."""
from __future__ import annotations

from typing import Any

import pandas as pd

from polyplib import viz
from polyplib.book.results import CampaignView
from polyplib.campaigns import per_image
from polyplib.campaigns.collect import recipe_name
from polyplib.stats import bootstrap_ci, paired_comparison, seed_comparison

GMSRF_COLUMNS = ("dice", "iou", "recall", "precision")  # GMSRF protocol: threshold 0.5 at the model's size (Sec. III)
PRANET_COLUMNS = ("meanDice", "meanIoU", "wFm", "Sm", "meanEm", "MAE")  # PraNet toolbox: 256 thresholds, original size
SAM_COLUMNS = ("dice", "iou", "meanDice", "meanIoU")
MONAI_COLUMNS = ("monaiDice", "monaiIoU")  # Polyp-SAM's printed protocol: MONAI metrics on [1, H, W] (row-wise)
REFERENCE = "GMSRF-Net"
PRECISION_CLAIM = "bf16 autocast + channels-last trains GMSRF-Net to the accuracy of fp32 (this book's recipe)"
PAPER_METHODS = {"DeepLabv3+": "DeepLabv3+ (Xception)"}  # ours uses a ResNet-50 encoder
PAPER_NAMES = {"kvasir-seg": "Kvasir-SEG", "cvc-clinicdb": "CVC-ClinicDB", "cvc-colondb": "CVC-ColonDB",
               "etis": "ETIS", "cvc-300": "CVC-300"}


def _md(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))


def _fig(fig) -> None:
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)


def _table(frame: pd.DataFrame, caption: str, precision: int = 3, **options: Any) -> None:
    from IPython.display import display

    display(viz.styled_table(frame, caption=caption, precision=precision, **options))


def image_means(view: CampaignView, test: str, prompt: str = "none", by: str = "model",
                metric: str = "dice") -> pd.DataFrame:
    """Per image, the metric averaged over seeds: rows = images, columns = groups (`by`)."""
    scores = per_image(view.results, test, prompt)
    if scores.empty:
        return scores
    return scores.groupby(["id", by], sort=False)[metric].mean().unstack(by)


def interval_table(view: CampaignView, metric: str = "dice", prompt: str = "none", by: str = "model") -> pd.DataFrame:
    """Mean over images of the seed-averaged metric with its 95 % bootstrap CI, per group and test set."""
    rows = []
    for test in dict.fromkeys(view.frame["test"]):
        table = image_means(view, test, prompt, by, metric)
        for group in table.columns:
            low, high = bootstrap_ci(table[group].dropna())
            rows.append({by: group, "test": test, "images": int(table[group].notna().sum()),
                         metric: table[group].mean(), "95% CI": f"[{low:.3f}, {high:.3f}]"})
    return pd.DataFrame(rows)


def paired_table(view: CampaignView, reference: str = REFERENCE, metric: str = "dice", prompt: str = "none",
                 by: str = "model", tests: tuple[str, ...] | None = None) -> pd.DataFrame:
    """`reference` against every other group on the same images: Δ mean, paired-bootstrap CI, Wilcoxon p, r, and
    the seed-level p of the run means (`seed_comparison`): the image CI holds the seeds fixed, so a verdict needs both
    (the image CI alone where the seeds are too few to test)."""
    rows = []
    frame = view.frame
    runs = frame[frame["prompt"] == prompt] if "prompt" in frame else frame
    tests = tests or tuple(dict.fromkeys(frame.loc[frame["kind"] == "unseen", "test"])) or tuple(frame["test"].unique())
    for test in tests:
        table = image_means(view, test, prompt, by, metric).dropna()
        if reference not in table:
            continue
        scores = runs[runs["test"] == test]
        for other in (c for c in table.columns if c != reference):
            stats = paired_comparison(table[reference], table[other])
            seeds = seed_comparison(*(scores.loc[scores[by] == g, metric] for g in (reference, other)))
            rows.append({"test": test, "comparison": f"{reference} − {other}", "images": stats["n"],
                         f"Δ {metric}": stats["diff"], "95% CI": f"[{stats['ci_low']:+.3f}, {stats['ci_high']:+.3f}]",
                         "Wilcoxon p": stats["wilcoxon_p"], "rank-biserial r": stats["rank_biserial"],
                         "seed p": seeds["p"], "verdict": _verdict(stats, seeds["p"])})
    return pd.DataFrame(rows)


def _verdict(stats: dict[str, float], seed_p: float = float("nan")) -> str:
    if seed_p >= 0.05:  # the runs' means do not stand out of the spread over seeds (nan: too few seeds to test)
        return "no clear difference"
    if stats["ci_low"] > 0:
        return "reference better"
    if stats["ci_high"] < 0:
        return "reference worse"
    return "no clear difference"


def gap_figure(frame: pd.DataFrame, metric: str = "dice", by: str = "model"):
    """Source vs unseen metric per model (mean ± sd over seeds): the generalisation gap GMSRF-Net claims to shrink."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    stats = frame.groupby([by, "kind"], sort=False)[metric].agg(["mean", "std"]).fillna(0.0)
    for name in dict.fromkeys(frame[by]):
        part = stats.loc[name].reindex(["source", "unseen"])
        ax.errorbar([0, 1], part["mean"], yerr=part["std"], marker="o", capsize=3, label=str(name))
    ax.set_xticks([0, 1], ["source test split", "unseen centre"])
    ax.set_xlim(-0.3, 1.3)
    ax.set_ylabel(f"{metric} (mean ± sd over seeds)")
    ax.set_title("Generalisation gap")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def learning_curves(view: CampaignView, metric: str = "val_dice", by: str = "model"):
    """Validation metric per epoch on the source validation split, mean ± sd over seeds, one line per model."""
    import matplotlib.pyplot as plt

    rows = [{by: r["spec"]["labels"].get(by), "seed": r["spec"]["labels"].get("seed"), **row}
            for r in view.results for row in r["train"]["history"] if metric in row]
    frame = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, column in zip(axes, ("train_loss", metric)):
        for name, part in frame.groupby(by, sort=False):
            stats = part.groupby("epoch")[column].agg(["mean", "std"]).fillna(0.0)
            x = stats.index + 1
            ax.plot(x, stats["mean"], marker="o", markersize=2, label=str(name))
            ax.fill_between(x, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_title(column.replace("_", " "))
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _mean_sd(frame: pd.DataFrame, by: list[str], metrics: tuple[str, ...]) -> pd.DataFrame:
    present = [m for m in metrics if m in frame]
    return viz.mean_sd_table(frame, [b for b in by if b in frame], present)


def cross_dataset_section(view: CampaignView) -> dict[str, Any] | None:
    """Chapter 4 for one profile: both protocols, figures, CIs, paired tests and the verdict on the paper's claim."""
    _md(view.heading())
    if not view.results:
        return None
    frame = view.frame
    _table(_mean_sd(frame, ["model", "train", "test", "kind"], GMSRF_COLUMNS),
           f"{view.profile}: GMSRF protocol (threshold 0.5), mean ± sd over seeds")
    _table(_mean_sd(frame, ["model", "test", "kind"], PRANET_COLUMNS),
           f"{view.profile}: PraNet protocol (original resolution), mean ± sd over seeds")
    ax = viz.bar_with_errors(frame, "test", "dice", hue="model", title=f"Dice per test set ({view.profile})")
    _fig(ax.figure)
    _fig(gap_figure(frame))
    _table(interval_table(view), f"{view.profile}: Dice over images (seed-averaged) with 95 % bootstrap CI")
    paired = paired_table(view)
    if not paired.empty:
        _table(paired, f"{view.profile}: paired per-image comparison on the unseen centre", precision=4)
    verdict = cross_dataset_verdict(view)
    _md(verdict["text"])
    return verdict


def _gap_numbers(frame: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    means = frame.groupby(["model", "kind"], sort=False)[metric].mean().unstack("kind")
    means["gap"] = means["source"] - means["unseen"]
    return means


def _ci_holds_zero(text: str) -> bool:
    low, high = (float(x) for x in text.strip("[]").split(","))
    return low <= 0 <= high


def cross_dataset_verdict(view: CampaignView) -> dict[str, Any]:
    """The paper's claim (GMSRF-Net generalises better to an unseen centre) against this profile's numbers."""
    frame = view.frame
    gaps = _gap_numbers(frame)
    paired = paired_table(view)
    claim = "GMSRF-Net generalises better to an unseen centre than the baselines"
    if REFERENCE not in gaps.index or paired.empty:
        return {"claim": claim, "ours": "not measured", "verdict": "open", "text": "No GMSRF-Net comparison yet."}
    better = paired[paired["verdict"] == "reference better"]["comparison"].str.split(" − ").str[1].tolist()
    worse = paired[paired["verdict"] == "reference worse"]["comparison"].str.split(" − ").str[1].tolist()
    g = gaps.loc[REFERENCE]
    best_other = gaps.drop(REFERENCE)["unseen"].idxmax() if len(gaps) > 1 else None
    ours = (f"unseen Dice {g['unseen']:.3f} (source {g['source']:.3f}, gap {g['gap']:.3f}); best baseline "
            f"{best_other} {gaps.loc[best_other, 'unseen']:.3f} (gap {gaps.loc[best_other, 'gap']:.3f})"
            if best_other else f"unseen Dice {g['unseen']:.3f}")
    n = len(paired)
    untested = bool(paired["seed p"].isna().any())  # a model with one seed: the spread between seeds is untested
    verdict = ("open" if untested else "supported" if len(better) == n else "contradicted" if len(worse) == n
               else "partly supported" if better else "not supported")
    caveat = " (synthetic frames and a few steps: this checks the analysis, not the methods)" \
        if view.profile == "smoke" else ""
    unsure = paired[paired["verdict"] == "no clear difference"]
    images_only = [f"{r['comparison'].split(' − ')[1]} ({r['Δ dice']:+.3f}, seed p {r['seed p']:.2g})"
                   for _, r in unsure.iterrows() if not _ci_holds_zero(r["95% CI"])]
    text = (f"**What the `{view.profile}` results say{caveat}.** {REFERENCE}: {ours}. On the unseen centre, paired over "
            f"images, {REFERENCE} is clearly better than {', '.join(better) or 'none'} of the {n} baselines"
            f"{'; clearly worse than ' + ', '.join(worse) if worse else ''} (the 95 % paired-bootstrap CI of the Dice "
            f"difference over images excludes 0 and the seed means differ, pooled t-test p < 0.05)."
            + (f" Against {', '.join(images_only)} the image CI excludes 0 but the difference does not stand out of "
               f"the spread between training seeds: on these images it is real, across retrainings it is not shown."
               if images_only else "")
            + (" A model has a single seed, so the spread between retrainings is untested." if untested else "")
            + f" Verdict on the claim at this size ({view.coverage()}): **{verdict}**.")
    return {"claim": claim, "ours": ours, "verdict": verdict, "text": text}


def training_section(view: CampaignView) -> bool:
    """Chapter 3 for one profile: learning curves of every model and the selected epochs (False: nothing stored)."""
    _md(view.heading())
    if not view.results:
        return False
    _fig(learning_curves(view))
    best = pd.DataFrame([{**r["spec"]["labels"], "best epoch": r["train"]["best_epoch"],
                          "of": r["train"]["epochs"], "best val Dice": r["train"]["best_metric"],
                          "img/s": r["provenance"].get("images_per_s"), "train (min)": r["provenance"]["train_s"] / 60}
                         for r in view.results]).drop(columns=["train"], errors="ignore")
    _table(best, f"{view.profile}: checkpoint selected on the source validation split", precision=3)
    return True


MIN_NOISE_SEEDS = 3  # seeds per side before a verdict may call a difference absent (fp32 check, ablations)


def precision_verdict(view: CampaignView, reference: CampaignView) -> dict[str, Any] | None:
    """The fp32 NCHW runs against the cross-dataset GMSRF-Net runs that trained in bf16 + channels-last (`precision=auto`
    on a CPU with native bf16): per test set the difference of the seed means with its p (`seed_comparison`), and each
    fp32 seed paired over images with the same bf16 seed. A p below 0.05 changes accuracy; keeping it needs `MIN_NOISE_SEEDS` seeds on both sides (None: a side
    is not stored)."""
    gmsrf = [r for r in reference.results if r["spec"]["labels"].get("model") == REFERENCE
             and r["spec"]["config"]["precision"] == "bf16"]
    if not view.results or not gmsrf:
        return None
    both = CampaignView(view.settings, view.campaign, [*gmsrf, *view.results], view.work)
    frame, fp32_label = both.frame, view.results[0]["spec"]["labels"]["model"]
    summary, pairs = [], []
    for test in dict.fromkeys(frame["test"]):
        part = frame[frame["test"] == test]
        bf16, fp32 = (part.loc[part["model"] == m, "dice"] for m in (REFERENCE, fp32_label))
        c = seed_comparison(bf16, fp32)
        summary.append({"test": test, "bf16 + channels-last": _mean_sd_text(bf16), "fp32 NCHW": _mean_sd_text(fp32),
                        "Δ (bf16 − fp32)": c["diff"], "95% CI (seeds)": f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]",
                        "p": c["p"], "test used": c["test"]})
    for fp32 in view.results:
        seed = fp32["spec"]["labels"].get("seed")
        same = [r for r in gmsrf if r["spec"]["labels"].get("seed") == seed]
        if not same:
            continue
        pair = CampaignView(view.settings, view.campaign, [same[0], fp32], view.work)
        for test in dict.fromkeys(pair.frame["test"]):
            table = image_means(pair, test).dropna()
            stats = paired_comparison(table[REFERENCE], table[fp32_label])
            pairs.append({"test": test, "seed": seed, "Δ (bf16 − fp32)": stats["diff"],
                          "95% CI over images": f"[{stats['ci_low']:+.3f}, {stats['ci_high']:+.3f}]",
                          "best val Dice bf16 / fp32": f"{same[0]['train']['best_metric']:.3f} / "
                                                      f"{fp32['train']['best_metric']:.3f}",
                          "img/s bf16 / fp32": f"{same[0]['provenance']['images_per_s']:.2f} / "
                                               f"{fp32['provenance']['images_per_s']:.2f}"})
    table = pd.DataFrame(summary)
    n_bf16, n_fp32 = len(gmsrf), len(view.results)
    p = table["p"]
    verdict = ("changes accuracy" if (p < 0.05).any() else "keeps accuracy"
               if min(n_bf16, n_fp32) >= MIN_NOISE_SEEDS and p.notna().all() else "open")
    ours = "; ".join(f"{r['test']} Δ Dice {r['Δ (bf16 − fp32)']:+.3f} {r['95% CI (seeds)']} (p {r['p']:.2f}, "
                     f"{r['test used']})" for r in summary)
    text = (f"**bf16 autocast + channels-last vs fp32 NCHW ({view.profile}, {n_bf16} bf16 and {n_fp32} fp32 "
            f"seed(s)).** Difference of the seed means: {ours}. "
            + {"keeps accuracy": "The faster recipe **keeps accuracy** at this size: no difference stands out of the "
                                 "spread over seeds (the intervals say how large a difference these seeds could "
                                 "still hide).",
               "changes accuracy": "The faster recipe **changes accuracy** at this size: a difference stands out of "
                                   "the spread over seeds (p < 0.05).",
               "open": f"Verdict **open**: no difference stands out yet, and {MIN_NOISE_SEEDS} seeds on each side are "
                       "needed before that says the accuracy is kept."}[verdict])
    return {"claim": PRECISION_CLAIM, "ours": ours, "verdict": verdict, "text": text, "table": table,
            "pairs": pd.DataFrame(pairs)}


def _mean_sd_text(values: pd.Series) -> str:
    return f"{values.mean():.3f} ± {values.std():.3f} ({len(values)})" if len(values) > 1 else \
        f"{values.mean():.3f} (1)"


def precision_section(view: CampaignView, reference: CampaignView) -> dict[str, Any] | None:
    """Chapter 3 for one profile: the accuracy check of the reduced-precision recipe."""
    _md(view.heading())
    verdict = precision_verdict(view, reference)
    if verdict is None:
        return None
    _table(verdict["table"], f"{view.profile}: GMSRF-Net Dice, bf16 + channels-last vs fp32 NCHW, mean ± sd (seeds) "
                             "and the difference of the seed means")
    _table(verdict["pairs"], f"{view.profile}: each fp32 seed against the same bf16 seed, paired over images")
    _md(verdict["text"])
    return verdict


def ablation_section(view: CampaignView, reference: CampaignView | list[CampaignView]) -> dict[str, Any] | None:
    """Chapter 5 for one profile: each component removed, against the full GMSRF-Net trained with the same recipe
    (`reference`: the cross-dataset campaign, and the precision campaign's fp32 runs)."""
    _md(view.heading())
    if not view.results:
        return None
    groups = ablation_groups(view, reference)
    frame = pd.concat([g.frame.replace({"model": {REFERENCE: f"{REFERENCE} ({recipe})"}}) if len(groups) > 1
                       else g.frame for recipe, g in groups], ignore_index=True)
    _table(_mean_sd(frame, ["model", "test", "kind"], ("dice", "iou", "meanDice", "Sm")),
           f"{view.profile}: ablations, mean ± sd over seeds (GMSRF-Net = the full network, same training recipe)")
    ax = viz.bar_with_errors(frame, "model", "dice", hue="test", title=f"Ablations: Dice ({view.profile})")
    _fig(ax.figure)
    lacking = [recipe for recipe, g in groups if REFERENCE not in set(g.frame["model"])]
    if lacking:
        _md(f"No full GMSRF-Net trained in {', '.join(lacking)} is stored yet: no paired comparison for those runs.")
    if len(lacking) == len(groups):
        return None
    verdict = ablation_verdict(view, reference)
    _table(verdict["paired"], f"{view.profile}: full GMSRF-Net minus each ablation, paired over images", precision=4)
    _md(verdict["text"])
    return verdict


def _full_runs(reference: CampaignView | list[CampaignView]) -> list[dict[str, Any]]:
    """The full GMSRF-Net runs of the reference campaigns (cross-dataset's GMSRF-Net, every fp32 check run), once each."""
    views = [reference] if isinstance(reference, CampaignView) else list(reference)
    runs = {r["run_id"]: r for v in views for r in v.results
            if v.campaign.name == "precision" or r["spec"]["labels"].get("model") == REFERENCE}
    return list(runs.values())


def ablation_groups(view: CampaignView, reference: CampaignView | list[CampaignView]) -> list[tuple[str, CampaignView]]:
    """Per training recipe of the ablations (`recipe_name`), a view of those runs with the full GMSRF-Net runs of the
    same recipe labelled `REFERENCE`: a drop measured against it is never a precision difference."""
    full = _full_runs(reference)
    groups = []
    for recipe in dict.fromkeys(recipe_name(r) for r in view.results):
        ref = [{**r, "spec": {**r["spec"], "labels": {**r["spec"]["labels"], "model": REFERENCE}}}
               for r in full if recipe_name(r) == recipe]
        mine = [r for r in view.results if recipe_name(r) == recipe]
        groups.append((recipe, CampaignView(view.settings, view.campaign, [*ref, *mine], view.work)))
    return groups


def ablation_verdict(view: CampaignView, reference: CampaignView) -> dict[str, Any]:
    """Which removed components (`COMPONENTS`) clearly lower Dice on some test set: paired CI over images above 0 and
    the drop standing out of the full network's spread over seeds (`seed_comparison` p < 0.05); the paper-vs-code
    variants are reported beside, not judged. Open until every component ablation and `MIN_NOISE_SEEDS` full-network
    seeds are stored."""
    from polyplib.campaigns.declared import COMPONENTS

    claim = "each component (CMSA, MSFS, two modules, deep supervision) improves GMSRF-Net"
    groups = ablation_groups(view, reference)
    tables = []
    for recipe, group in groups:
        table = paired_table(group, tests=tuple(dict.fromkeys(group.frame["test"])))
        if len(groups) > 1 and not table.empty:
            table.insert(1, "recipe", recipe)
        tables.append(table)
    paired = pd.concat(tables, ignore_index=True)
    if paired.empty:
        return {"claim": claim, "ours": "not measured", "verdict": "open", "text": "No paired comparison yet.",
                "paired": paired}
    frame = pd.concat([g.frame for _, g in groups], ignore_index=True)
    n_full = min(int(g.frame.loc[g.frame["model"] == REFERENCE, "seed"].nunique()) for _, g in groups)
    recipes = ", ".join(recipe for recipe, _ in groups)
    paired["variant"] = paired["comparison"].str.split(" − ").str[1]
    clear = paired[(paired["verdict"] == "reference better") & (paired["seed p"] < 0.05)]
    stored = [c for c in COMPONENTS if c in set(paired["variant"])]
    helps = [c for c in stored if c in set(clear["variant"])]
    missing = [c for c in COMPONENTS if c not in stored]
    others = [v for v in dict.fromkeys(paired["variant"]) if v not in COMPONENTS]
    seeds = int(frame.loc[frame["model"] != REFERENCE, "seed"].nunique())
    verdict = ("open" if missing or n_full < MIN_NOISE_SEEDS else "supported" if len(helps) == len(COMPONENTS)
               else "partly supported" if helps else "not supported")

    def said(name: str) -> str:
        part = paired[paired["variant"] == name]
        return f"{name} " + ", ".join(f"{r['Δ dice']:+.3f} {r['95% CI']} on {r['test']}" for _, r in part.iterrows())

    text = (f"**What the `{view.profile}` ablations say** ({len(stored)} of {len(COMPONENTS)} component ablations "
            f"stored, {seeds} seed(s) each, trained in {recipes}; full network of the same recipe: {n_full} seed(s)). "
            f"Full GMSRF-Net minus each variant, Dice paired over images: {'; '.join(said(v) for v in stored) or 'none stored'}. Removing a component clearly "
            f"lowers Dice (paired CI over images above 0 and p < 0.05 against the full network's spread over seeds) for: "
            f"{', '.join(helps) or 'none'}."
            + (f" Paper's text vs the authors' code (not judged): {'; '.join(said(v) for v in others)}." if others else "")
            + (f" Not stored yet: {', '.join(missing)}." if missing else "")
            + f" Verdict on the claim: **{verdict}**"
            + (f" (needs all {len(COMPONENTS)} component ablations and {MIN_NOISE_SEEDS} full-network seeds)."
               if verdict == "open" else "."))
    ours = (f"clearly helps: {', '.join(helps) or 'none'} ({len(stored)} of {len(COMPONENTS)} component ablations "
            f"stored, {seeds} seed(s))")
    return {"claim": claim, "ours": ours, "verdict": verdict, "text": text, "paired": paired.drop(columns="variant")}


def _sam_frame(view: CampaignView) -> pd.DataFrame:
    frame = view.frame
    return frame.assign(model=frame["strategy"])


def sam_strategy_section(view: CampaignView) -> dict[str, Any] | None:
    """Chapter 6 for one profile: decoder-only vs full fine-tuning with ground-truth boxes."""
    _md(view.heading())
    if not view.results:
        return None
    frame = _sam_frame(view)
    gt = frame[frame["prompt"] == "gt-box"]
    _table(_mean_sd(gt, ["strategy", "test", "kind"], (*SAM_COLUMNS, *MONAI_COLUMNS)),
           f"{view.profile}: Polyp-SAM with ground-truth boxes, mean ± sd over seeds")
    ax = viz.bar_with_errors(gt, "test", "dice", hue="strategy", title=f"Decoder-only vs full ({view.profile})")
    _fig(ax.figure)
    verdict = sam_strategy_verdict(view)
    if not verdict["paired"].empty:
        _table(verdict["paired"], f"{view.profile}: full minus decoder-only fine-tuning, paired over images",
               precision=4)
    _md(verdict["text"])
    return verdict


def sam_strategy_verdict(view: CampaignView) -> dict[str, Any]:
    """Full fine-tuning against decoder-only with ground-truth boxes, paired over images on every test set."""
    tests = tuple(dict.fromkeys(view.frame["test"]))
    paired = paired_table(view, reference="full", prompt="gt-box", by="strategy", tests=tests)
    claim = "full fine-tuning beats decoder-only (Polyp-SAM Table 1)"
    if paired.empty:
        missing = {"decoder", "full"} - set(view.frame["strategy"])
        return {"claim": claim, "ours": f"not measured ({', '.join(sorted(missing))} not stored yet)",
                "verdict": "open", "paired": paired,
                "text": f"**What the `{view.profile}` results say.** Nothing to compare yet: "
                        f"{' and '.join(sorted(missing))} fine-tuning is not stored ({view.coverage()})."}
    full_better = bool((paired["verdict"] == "reference better").all())
    untested = bool(paired["seed p"].isna().any())  # one seed of a strategy: the image CI holds the seeds fixed
    clear = paired.loc[paired["verdict"] == "reference better", "test"].tolist()
    worse = bool((paired["verdict"] == "reference worse").any())
    verdict = ("open" if untested else "supported" if full_better else "partly supported" if clear and not worse
               else "not supported")
    scratch = (" Without SAM's pretraining a decoder-only run trains the prompt encoder and mask decoder on top of a "
               "**frozen random** image encoder: it measures what a random projection of the image gives, not SAM."
               if view.settings.from_scratch else "")
    if untested:
        said = (f"Full fine-tuning is {'clearly better than' if full_better else 'not clearly better than'} "
                "decoder-only on every test set (paired CI over images). With one seed of a strategy the spread between "
                "retrainings is untested, so the verdict stays **open** until each strategy has two seeds.")
    else:
        unclear = [t for t in paired["test"] if t not in clear]
        said = (f"Full fine-tuning is clearly better than decoder-only (paired CI over images above 0 and the seed "
                f"means differ, p < 0.05) on: {', '.join(clear) or 'no test set'}"
                + (f"; not clearly on: {', '.join(unclear)}" if unclear else "") + f". Verdict: **{verdict}**.")
    text = f"**What the `{view.profile}` results say.** {said}{scratch}"
    return {"claim": claim,
            "ours": "; ".join(f"{r['test']}: Δ {r['Δ dice']:+.3f} {r['95% CI']}" for _, r in paired.iterrows()),
            "verdict": verdict, "text": text, "paired": paired}


def sam_prompt_section(view: CampaignView) -> None:
    """Chapter 7 for one profile: Dice by prompt source (GT, jittered GT, cascade, the filled box alone)."""
    _md(view.heading())
    if not view.results:
        return
    frame = _sam_frame(view)
    _table(_mean_sd(frame, ["strategy", "prompt", "test"], (*SAM_COLUMNS, *MONAI_COLUMNS)),
           f"{view.profile}: Polyp-SAM by prompt, mean ± sd over seeds")
    jitter = frame[frame["prompt"].str.startswith(("gt-box", "jitter"))].copy()
    jitter["jitter"] = jitter["prompt"].map(lambda p: 0.0 if p == "gt-box" else float(p.split("-")[1]))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for (strategy, test), part in jitter.groupby(["strategy", "test"], sort=False):
        stats = part.groupby("jitter")["dice"].agg(["mean", "std"]).fillna(0.0)
        ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=3, label=f"{strategy}, {test}")
    ax.set_xlabel("box jitter (fraction of the box side)")
    ax.set_ylabel("dice (mean ± sd over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _fig(fig)
    _md(sam_prompt_verdict(view))


def sam_prompt_verdict(view: CampaignView) -> str:
    """Chapter 7's closing paragraph: what jitter and the cascade cost, and whether SAM beats its own box."""
    frame = _sam_frame(view)
    means = frame.groupby(["strategy", "test", "prompt"], sort=False)["dice"].mean()
    parts = []
    for (strategy, test), part in means.groupby(level=[0, 1], sort=False):
        got = part.droplevel([0, 1])
        if "gt-box" not in got:
            continue
        line = f"{strategy}, {test}: GT box {got['gt-box']:.3f}"
        if "jitter-0.2" in got:
            line += f", 20 % jitter {got['jitter-0.2'] - got['gt-box']:+.3f}"
        if "cascade" in got:
            line += f", cascade {got['cascade']:.3f}"
        if "box-fill" in got:
            line += (f", the filled GT box alone {got['box-fill']:.3f}"
                     + (" (**above** the model)" if got["box-fill"] > got["gt-box"] else ""))
        parts.append(line)
    box_wins = [p for p in parts if "**above**" in p]
    scratch = (" Every model here is trained from scratch (decoder-only: on a frozen random image encoder; full: the "
               "encoder trained from random weights), so none of this is a statement about pretrained Polyp-SAM."
               if view.settings.from_scratch else "")
    return (f"**What the `{view.profile}` results say** (Dice, mean over seeds). {'; '.join(parts)}. "
            + ("The box itself, filled, scores higher than the model prompted with it on "
               f"{len(box_wins)} of {len(parts)} strategy x test set(s): at this size the mask decoder does not yet add "
               "information beyond its prompt." if box_wins else
               "The model improves on its own box prompt on every strategy and test set.")
            + scratch)


def paper_side_by_side(view: CampaignView, table: str, metrics: tuple[str, ...] = ("dsc", "miou")) -> pd.DataFrame:
    """A published GMSRF table beside this profile's mean over seeds, matched on method and source/unseen."""
    from polyplib.paper_results import paper_table

    paper = paper_table(table)
    ours = view.frame
    if ours.empty:
        return pd.DataFrame()
    ours = ours.assign(method=ours["model"].map(lambda m: PAPER_METHODS.get(m, m)), dsc=ours["dice"], miou=ours["iou"],
                       train=ours["train"].map(lambda t: PAPER_NAMES.get(t, t)))
    means = ours.groupby(["method", "train", "kind", "test"], sort=False).agg(
        **{f"{m} ours": (m, "mean") for m in metrics}).reset_index().rename(columns={"test": "our test set"})
    merged = paper.merge(means, on=["method", "train", "kind"], how="inner")
    for m in metrics:
        merged[f"{m} Δ"] = merged[f"{m} ours"] - merged[m]
    return merged.rename(columns={m: f"{m} paper" for m in metrics})


def show_paper_tables(views: list[CampaignView], tables: tuple[str, ...] = ("gmsrf-table-1", "gmsrf-table-2")) -> None:
    """Each published GMSRF table beside every view that has runs on its source dataset."""
    for view in views:
        for table in tables:
            side = paper_side_by_side(view, table)
            if not side.empty:
                _table(side, f"{table} (paper) beside {view.profile} (ours, mean over seeds; Δ = ours − paper)", 4)


SAM_TEST_NAMES = {"kvasir-seg": "Kvasir", "cvc-clinicdb": "CVC-ClinicDB", "cvc-colondb": "CVC-ColonDB",
                  "etis": "ETIS", "cvc-300": "CVC-300"}


def sam_paper_side_by_side(view: CampaignView, table: str) -> pd.DataFrame:
    """A published Polyp-SAM table (rows on our test sets) with our runs (ground-truth boxes) appended, scored with the
    paper's protocol (`monaiDice` / `monaiIoU`; per-image Dice / IoU for results stored before polyplib had it)."""
    from polyplib.paper_results import paper_table

    paper = paper_table(table)
    if not view.results:
        return pd.DataFrame()
    frame = view.frame
    gt = frame[frame["prompt"] == "gt-box"].assign(test=lambda f: f["test"].map(lambda t: SAM_TEST_NAMES.get(t, t)))
    columns = MONAI_COLUMNS if set(MONAI_COLUMNS) <= set(gt.columns) else ("dice", "iou")  # the paper's protocol
    ours = gt.groupby(["strategy", "test"], sort=False)[list(columns)].mean().reset_index()
    ours = ours.rename(columns=dict(zip(columns, ("dsc", "miou"))))
    if not set(ours["test"]) & set(paper["test"]):
        return pd.DataFrame()  # none of our test sets is in the paper's table (e.g. the synthetic centres)
    label = f"{view.settings.sam_model}{' (scratch)' if view.settings.from_scratch else ''}, {view.profile}"
    if "strategy" in paper:
        ours["source"] = label
        return pd.concat([paper[paper["test"].isin(ours["test"])].assign(source="paper"), ours], ignore_index=True)
    ours["method"] = label + ", " + ours.pop("strategy")
    return pd.concat([paper[paper["test"].isin(ours["test"])], ours], ignore_index=True)


def stored_bench_section(results_dir: Any = None) -> list[dict[str, Any]]:
    """Chapter 8: every stored `polyplib bench` result (`results/<profile>/bench/*.json`): lines and speed-ups with
    their ranges, trust warnings and provenance; returns the comparisons shown."""
    import json
    from pathlib import Path

    from polyplib.book.results import RESULTS_DIR, STORED_PROFILES

    root, shown = Path(results_dir or RESULTS_DIR), []
    for profile in STORED_PROFILES:
        for path in sorted((root / profile / "bench").glob("*.json")):
            data = json.loads(path.read_text())
            prov, suite = data["provenance"], data["suites"]["gmsrf"]
            _md(f"**Stored benchmark `{path.relative_to(root)}`** (profile `{profile}`): GMSRF-Net at "
                f"{suite['image_size']}x{suite['image_size']} on {prov.get('machine')}, {suite['device']}, torch "
                f"{prov.get('torch')}, commit {str(prov.get('commit', '?'))[:7]}, {str(prov.get('date', '?'))[:10]}; "
                f"{suite['repeats']} interleaved repeats of {suite['steps_per_repeat']} steps.")
            lines = pd.DataFrame([{"variant": ln["variant"], "recipe": ln["recipe"], "kind": ln["kind"],
                                   "batch": ln["batch"], "img/s": ln["images_per_s"],
                                   "min-max": f"{ln['images_per_s_min']:.2f}-{ln['images_per_s_max']:.2f}"}
                                  for ln in suite["lines"]])
            _table(lines, f"{profile}: images/s, ours vs the authors' way (median, min-max of repeats)", precision=2)
            for c in suite["comparisons"]:
                _md(f"{c['variant']}: training speed-up ours / authors **x{c['speedup']:.2f}** (x{c['speedup_min']:.2f}"
                    f"-x{c['speedup_max']:.2f} over {c['repeats']} paired repeats)"
                    + (f". Warning: {c['warning']}" if c.get("warning") else "."))
                shown.append({"profile": profile, "file": path.name, **c})
    return shown


def verdict_table(results_dir: Any = None) -> pd.DataFrame:
    """Chapter 9: each claim, the paper's evidence, every stored profile's evidence and verdict."""
    from polyplib.book.results import STORED_PROFILES, stored

    evidence = {"GMSRF-Net generalises better to an unseen centre than the baselines":
                "Tables I-II: +8.34 / +10.31 Dice points over MSRF-Net on the unseen set",
                "each component (CMSA, MSFS, two modules, deep supervision) improves GMSRF-Net":
                "not ablated in the paper (components motivated in Sec. II)",
                "full fine-tuning beats decoder-only (Polyp-SAM Table 1)": "Table 1: full ≥ decoder on all 5 sets",
                PRECISION_CLAIM: "ours (chapter 8: faster on CPUs with native bf16)"}
    rows = []
    for profile in STORED_PROFILES:
        cross, ablations, sam = (stored(profile, n, results_dir) for n in ("cross-dataset", "ablations", "polyp-sam"))
        found = []
        if cross.results:
            found.append(cross_dataset_verdict(cross))
        if ablations.results and cross.results:
            found.append(ablation_verdict(ablations, [cross, stored(profile, "precision", results_dir)]))
        if sam.results:
            found.append(sam_strategy_verdict(sam))
        check = precision_verdict(stored(profile, "precision", results_dir), cross) if cross.results else None
        if check:
            found.append(check)
        rows += [{"claim": v["claim"], "paper's evidence": evidence.get(v["claim"], ""), "profile": profile,
                  "our evidence": v["ours"], "verdict": v["verdict"]} for v in found]
    return pd.DataFrame(rows, columns=["claim", "paper's evidence", "profile", "our evidence", "verdict"])
