"""What each chapter shows of a campaign: sections (heading, tables, figures, verdict) built from the pure analysis
(`polyplib.book.analysis`) and the figures (`polyplib.book.plots`); a notebook displays the section it gets back."""
from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from polyplib import viz
from polyplib.book import analysis, transfer
from polyplib.book.analysis import REFERENCE, Verdict
from polyplib.book.plots import gap_figure, jitter_figure, learning_curves
from polyplib.book.results import CampaignView
from polyplib.campaigns.collect import missing_runs, recipe_name
from polyplib.stats import N_RESAMPLES

GMSRF_COLUMNS = ("dice", "iou", "recall", "precision")  # GMSRF protocol: threshold 0.5 at the model's size (Sec. III)
PRANET_COLUMNS = ("meanDice", "meanIoU", "wFm", "Sm", "meanEm", "MAE")  # PraNet toolbox: 256 thresholds, original size
SAM_COLUMNS = ("dice", "iou", "meanDice", "meanIoU")
MONAI_COLUMNS = ("monaiDice", "monaiIoU")  # Polyp-SAM's printed protocol: MONAI metrics on [1, H, W] (row-wise)
PAPER_METHODS = {"DeepLabv3+": "DeepLabv3+ (Xception)"}  # ours uses a ResNet-50 encoder
PAPER_NAMES = {"kvasir-seg": "Kvasir-SEG", "cvc-clinicdb": "CVC-ClinicDB", "cvc-colondb": "CVC-ColonDB",
               "etis": "ETIS", "cvc-300": "CVC-300"}
def how_we_decide() -> "Markdown":
    """Chapter 9's "How we decide" in plain words (the numbers it quotes come from the shipped metadata)."""
    from IPython.display import Markdown

    from polyplib.data.frames import N_SEQUENCES, shipped_segments

    segments = len(set(shipped_segments("cvc-colondb").values()))
    return Markdown(f"""**How we decide.** A verdict is *supported*, *contradicted* or *inconclusive*; a claim of sameness
is *equivalent*, *different* or *not shown either way*.

- **Units.** CVC-ColonDB's 380 frames come from {N_SEQUENCES["cvc-colondb"]} colonoscopy videos, and neighbouring
  frames are near copies, so their scores are correlated (chapter 4 shows how much). Frames of one video count once:
  intervals on CVC-ColonDB resample its video segments, recovered from the frames by change-point detection
  (`polyplib datasets segments cvc-colondb`: {segments} segments, a conservative merge where the frames do not
  separate two videos). A Kvasir-SEG test image is its own unit. Training seeds are the units of "does this recipe
  beat that one across retrainings".
- **Evidence.** Per image, each model's score is averaged over its seeds; the paired difference gets a 95 % cluster
  bootstrap interval over the units ({N_RESAMPLES:,} resamples, printed to 2 decimals). The seed means are compared
  with Welch's t test (no equal-variance assumption), Holm-corrected over the comparisons of one claim. A difference
  counts only when both agree.
- **Inconclusive** comes with the smallest difference the design could have detected (minimum detectable effect at
  80 % power from the observed seed spread). One seed on a side gives no seed test: inconclusive by construction.
- **Sameness** needs an equivalence test: two one-sided Welch tests (TOST) with a margin of
  ±{analysis.EQUIVALENCE_MARGIN} Dice stated in advance.""")


@dataclasses.dataclass
class Section:
    """What a chapter shows of one campaign, in order: markdown, tables and figures, and the verdict (if any).
    Displaying it (a notebook's last expression, or `display(section)`) renders them; `bool(section)`: results exist."""

    parts: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    verdict: Verdict | None = None
    has_results: bool = False

    def md(self, text: str) -> "Section":
        self.parts.append(("md", text))
        return self

    def table(self, frame: pd.DataFrame, caption: str, precision: int = 3, **options: Any) -> "Section":
        if not frame.empty:
            self.parts.append(("table", viz.styled_table(frame, caption=caption, precision=precision, **options)))
        return self

    def figure(self, fig) -> "Section":
        import matplotlib.pyplot as plt

        self.parts.append(("figure", fig))
        plt.close(fig)
        return self

    def __bool__(self) -> bool:
        return self.has_results

    def _ipython_display_(self) -> None:
        from IPython.display import Markdown, display

        for kind, item in self.parts:
            display(Markdown(item) if kind == "md" else item)


def _section(view: CampaignView) -> Section:
    """A chapter's section of one campaign, led by its heading (`has_results` when results are stored)."""
    section = Section().md(view.heading())
    section.has_results = bool(view.results)
    return section


def _md(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))


def _table(frame: pd.DataFrame, caption: str, precision: int = 3, **options: Any) -> None:
    from IPython.display import display

    display(viz.styled_table(frame, caption=caption, precision=precision, **options))


def _mean_sd(frame: pd.DataFrame, by: list[str], metrics: tuple[str, ...]) -> pd.DataFrame:
    present = [m for m in metrics if m in frame]
    return viz.mean_sd_table(frame, [b for b in by if b in frame], present)


def _verdict_tables(section: Section, verdict: Verdict, caption: str) -> None:
    if "comparisons" in verdict.tables:
        section.table(analysis.shown(verdict.tables["comparisons"]), caption, precision=4)
    section.md(verdict.text)


def cross_dataset_section(view: CampaignView) -> Section:
    """Chapter 4 for one profile: both protocols, the gap, the report card, intervals over units and the verdict."""
    section = _section(view)
    if not view.results:
        return section
    frame = view.frame
    section.table(_mean_sd(frame, ["model", "train", "test", "kind"], GMSRF_COLUMNS),
                  f"{view.profile}: GMSRF protocol (threshold 0.5), mean ± sd over seeds")
    section.table(_mean_sd(frame, ["model", "test", "kind"], PRANET_COLUMNS),
                  f"{view.profile}: PraNet protocol (original resolution), mean ± sd over seeds")
    section.figure(viz.bar_with_errors(frame, "test", "dice", hue="model",
                                       title=f"Dice per test set ({view.profile})").figure)
    section.figure(gap_figure(frame))
    section.table(analysis.gap_table(view), f"{view.profile}: generalisation gap (source − unseen Dice) per model, "
                                            "t interval over seeds")
    section.table(analysis.interval_table(view), f"{view.profile}: Dice over images (seed-averaged) with its 95 % "
                                                 "CI over independent units")
    _report_card(section, view)
    leaks = analysis.leak_table(view)
    if not leaks.empty:
        section.table(leaks, f"{view.profile}: source test images with a near-duplicate in the training or validation "
                             "split, and the mean without them")
    verdict = analysis.generalisation_verdict(view)
    section.verdict = verdict
    _verdict_tables(section, verdict, f"{view.profile}: {REFERENCE} minus each baseline on the unseen centre")
    return section


def _report_card(section: Section, view: CampaignView, prompt: str = "none", by: str = "model") -> None:
    card = analysis.report_card(view, prompt, by)
    if card.empty:
        return
    missing = card["missing"].notna() if "missing" in card else pd.Series(False, index=card.index)
    if missing.all():
        section.md(f"**Report card:** none of the {len(card)} stored {by} x test set results has per-image HD95, NSD "
                   "or polyp area: they were evaluated before the report card existed, and a rerun of their "
                   "evaluation adds it.")
        return
    section.table(card[~missing].drop(columns="missing", errors="ignore"),
                  f"{view.profile}: report card per {by} and test set")
    if missing.any():
        section.md(f"{int(missing.sum())} of {len(card)} rows were evaluated before the report card existed and are "
                   "left out of it.")
    section.md(analysis.REPORT_CARD_NOTE)


def unit_section(view: CampaignView, test: str = "cvc-colondb") -> Section:
    """How the intervals on a video test set depend on the unit resampled (frames, blocks, recovered segments)."""
    section = Section()
    table = analysis.unit_sensitivity(view, test)
    if table.empty:
        return section
    section.has_results = True
    section.table(table, f"{view.profile}: 95 % CI of {REFERENCE} − each baseline on {test}, by the unit resampled")
    section.table(analysis.mixed_model_table(view, test), f"{view.profile}: cross-check with one model for seeds and "
                  "segments (linear mixed model, crossed random intercepts for run and video segment)")
    return section.md("The mixed model weights each video segment equally (the bootstrap weights frames) and its Wald "
                      "test has no small-sample correction for three runs per model, so it is more liberal than the "
                      "Welch test over seeds; it is shown as a cross-check, and the verdicts rest on the cluster "
                      "bootstrap and the Welch test.")


def training_section(view: CampaignView) -> Section:
    """Chapter 3 for one profile: learning curves of every model and the selected epochs."""
    section = _section(view)
    if not view.results:
        return section
    section.figure(learning_curves(view))
    best = pd.DataFrame([{**r.labels, "best epoch": r.train.best_epoch, "of": r.train.epochs,
                          "best val Dice": r.train.best_metric, "img/s": r.provenance.images_per_s,
                          "train (min)": r.provenance.train_s / 60}
                         for r in view.results]).drop(columns=["train"], errors="ignore")
    return section.table(best, f"{view.profile}: checkpoint selected on the source validation split", precision=3)


def precision_section(view: CampaignView, reference: CampaignView) -> Section:
    """Chapter 3 for one profile: is the reduced-precision recipe equivalent to fp32 (TOST)?"""
    section = Section().md(view.heading())
    verdict = analysis.precision_verdict(view, reference)
    if verdict is None:
        return section
    section.has_results, section.verdict = True, verdict
    section.table(verdict.tables["summary"], f"{view.profile}: GMSRF-Net Dice, bf16 + channels-last vs fp32 NCHW, "
                                             "mean ± sd (seeds), TOST equivalence")
    return section.md(verdict.text)


def ablation_groups(view: CampaignView, references: list[CampaignView]) -> list[tuple[str, CampaignView]]:
    """Per training recipe of the ablations, a view of those runs with the full GMSRF-Net runs of the same recipe
    labelled `REFERENCE` (cross-dataset's GMSRF-Net and the precision check's fp32 runs): a drop is never precision."""
    full = {r.run_id: r for v in references for r in v.results
            if v.campaign.name == "precision" or r.labels.get("model") == REFERENCE}
    groups = []
    for recipe in dict.fromkeys(recipe_name(r) for r in view.results):
        ref = [r.relabelled(model=REFERENCE) for r in full.values() if recipe_name(r) == recipe]
        mine = [r for r in view.results if recipe_name(r) == recipe]
        groups.append((recipe, CampaignView(view.settings, view.campaign, [*ref, *mine], view.work)))
    return groups


def ablation_verdict(view: CampaignView, references: list[CampaignView]) -> Verdict:
    """The ablation claim from this campaign and the full-network runs of the reference campaigns."""
    from polyplib.campaigns.declared import COMPONENTS

    return analysis.ablation_verdict(ablation_groups(view, references), COMPONENTS, view.profile)


def ablation_section(view: CampaignView, references: list[CampaignView]) -> Section:
    """Chapter 5 for one profile: each component removed, against the full GMSRF-Net of the same training recipe."""
    section = _section(view)
    if not view.results:
        return section
    groups = ablation_groups(view, references)
    frame = pd.concat([g.frame.replace({"model": {REFERENCE: f"{REFERENCE} ({recipe})"}}) if len(groups) > 1
                       else g.frame for recipe, g in groups], ignore_index=True)
    section.table(_mean_sd(frame, ["model", "test", "kind"], ("dice", "iou", "meanDice", "Sm")),
                  f"{view.profile}: ablations, mean ± sd over seeds (GMSRF-Net = the full network, same recipe)")
    section.figure(viz.bar_with_errors(frame, "model", "dice", hue="test", title=f"Ablations: Dice ({view.profile})").figure)
    lacking = [recipe for recipe, g in groups if REFERENCE not in set(g.frame["model"])]
    if lacking:
        section.md(f"No full GMSRF-Net trained in {', '.join(lacking)} is stored yet: no paired comparison for those.")
    if len(lacking) == len(groups):
        return section
    verdict = ablation_verdict(view, references)
    section.verdict = verdict
    _verdict_tables(section, verdict, f"{view.profile}: full GMSRF-Net minus each ablation")
    return section


def _sam_frame(view: CampaignView) -> pd.DataFrame:
    frame = view.frame
    return frame.assign(model=frame["strategy"])


def sam_strategy_section(view: CampaignView) -> Section:
    """Chapter 6 for one profile: decoder-only vs full fine-tuning with ground-truth boxes."""
    section = _section(view)
    if not view.results:
        return section
    frame = _sam_frame(view)
    gt = frame[frame["prompt"] == "gt-box"]
    section.table(_mean_sd(gt, ["strategy", "test", "kind"], (*SAM_COLUMNS, *MONAI_COLUMNS)),
                  f"{view.profile}: Polyp-SAM with ground-truth boxes, mean ± sd over seeds")
    section.figure(viz.bar_with_errors(gt, "test", "dice", hue="strategy",
                                       title=f"Decoder-only vs full ({view.profile})").figure)
    _report_card(section, view, prompt="gt-box", by="strategy")
    verdict = analysis.sam_strategy_verdict(view)
    section.verdict = verdict
    _verdict_tables(section, verdict, f"{view.profile}: full minus decoder-only fine-tuning")
    return section


def sam_prompt_section(view: CampaignView) -> Section:
    """Chapter 7 for one profile: Dice by prompt source (GT, jittered GT, cascade, the filled box alone)."""
    section = _section(view)
    if not view.results:
        return section
    frame = _sam_frame(view)
    section.table(_mean_sd(frame, ["strategy", "prompt", "test"], (*SAM_COLUMNS, *MONAI_COLUMNS)),
                  f"{view.profile}: Polyp-SAM by prompt, mean ± sd over seeds")
    section.figure(jitter_figure(frame))
    return section.md(sam_prompt_verdict(view))


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


TRANSFER_PROMPTS = ("gt-box", "jitter-0.05", "jitter-0.1", "jitter-0.2", "cascade", "box-fill")


def transfer_section(view: CampaignView) -> Section:
    """Chapter 6's lead: the pretrained model transferred to the unseen centre by each arm, with sequence-level
    inference paired by fold, and the robustness of each arm to the project's other prompts."""
    section = _section(view)
    if not view.results:
        return section
    pretrained = (" The pretrained model is this book's own: Polyp-SAM's architecture (tiny) trained whole from random "
                  "weights on the source's training split with box prompts. It stands in for SAM's web-scale "
                  "pretraining at a tiny scale: it has seen one centre's polyps, not a billion masks, so it cannot show "
                  "how SAM's general-purpose features transfer, only how a promptable segmenter pretrained on one "
                  "centre adapts to another with each arm." if view.settings.from_scratch else "")
    section.md("**Design.** Each fold fine-tunes on a third of the unseen centre's video segments (the last quarter of "
               "them validates) and tests on the other two thirds, so no video is on both sides; seed k uses fold k. "
               "Every arm starts from the same pretrained weights with the same steps, schedule, learning rate and "
               "prompts; zero-shot is the pretrained model on the same held-out images." + pretrained)
    pretrained = transfer.pretraining_table(view.results)
    if not pretrained.empty:
        section.table(pretrained, f"{view.profile}: the pretrained model the arms start from (ground-truth boxes; its "
                                  "checkpoint selected on the source validation split)", precision=3)
    arms = transfer.arm_table(view.results)
    if view.profile == "smoke":  # seconds and memory of a live run depend on the machine (nbval compares the output)
        arms = arms.drop(columns=["s/step", "peak memory (MB)"], errors="ignore")
    if not arms.empty:
        section.table(arms, f"{view.profile}: held-out Dice by arm (ground-truth boxes), mean ± sd over folds; "
                            "cost of fine-tuning per optimiser step")
    comparisons = transfer.comparison_table(view.results)
    if not comparisons.empty:
        section.table(comparisons, f"{view.profile}: arm differences on the same held-out images (95 % CI resampling "
                                   f"video segments, {N_RESAMPLES:,} resamples; paired t and TOST over folds)")
    prompts = transfer.prompt_table(view.results, TRANSFER_PROMPTS)
    if not prompts.empty:
        section.table(prompts.reset_index(), f"{view.profile}: held-out Dice by arm and prompt, mean over folds")
    reading = transfer.box_fill_reading(view.results)
    if reading:
        section.md(reading)
    verdicts = transfer.transfer_verdicts(view.results, view.profile, comparisons)
    section.verdict = verdicts[0]
    for verdict in verdicts:
        section.md(verdict.text)
    return section


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
    from pathlib import Path

    from polyplib.bench import BenchResult
    from polyplib.book.results import RESULTS_DIR, STORED_PROFILES

    root, shown = Path(results_dir or RESULTS_DIR), []
    for profile in STORED_PROFILES:
        for path in sorted((root / profile / "bench").glob("*.json")):
            stored_bench = BenchResult.load(path)
            prov, suite = stored_bench.provenance, stored_bench.suites["gmsrf"]
            _md(f"**Stored benchmark `{path.relative_to(root)}`** (profile `{profile}`): GMSRF-Net at "
                f"{suite.image_size}x{suite.image_size} on {prov.get('machine')}, {suite.device}, torch "
                f"{prov.get('torch')}, commit {str(prov.get('commit', '?'))[:7]}, {str(prov.get('date', '?'))[:10]}; "
                f"{suite.repeats} interleaved repeats of {suite.steps_per_repeat} steps.")
            lines = pd.DataFrame([{"variant": ln["variant"], "recipe": ln["recipe"], "kind": ln["kind"],
                                   "batch": ln["batch"], "img/s": ln["images_per_s"],
                                   "min-max": f"{ln['images_per_s_min']:.2f}-{ln['images_per_s_max']:.2f}"}
                                  for ln in suite.lines])
            _table(lines, f"{profile}: images/s, ours vs the authors' way (median, min-max of repeats)", precision=2)
            for c in suite.comparisons:
                _md(f"{c['variant']}: training speed-up ours / authors **x{c['speedup']:.2f}** (x{c['speedup_min']:.2f}"
                    f"-x{c['speedup_max']:.2f} over {c['repeats']} paired repeats)"
                    + (f". Warning: {c['warning']}" if c.get("warning") else "."))
                shown.append({"profile": profile, "file": path.name, **c})
    return shown


def verdict_table(results_dir: Any = None) -> pd.DataFrame:
    """Chapter 9: each claim, the paper's evidence, every stored profile's evidence, outcome and source campaign."""
    from polyplib.book.results import STORED_PROFILES, stored

    evidence = {analysis.GENERALISATION: "Tables I-II: +8.34 / +10.31 Dice points over MSRF-Net on the unseen set",
                analysis.COMPONENTS_HELP: "not ablated in the paper (components motivated in Sec. II)",
                analysis.SAM_FULL: "Table 1: full ≥ decoder on all 5 sets",
                transfer.TRANSFER_FULL: "Table 1: full ≥ decoder on all 5 sets (SAM's weights; no unseen-centre split)",
                transfer.LORA_MATCH: "not in the paper (micro-sam: LoRA best of nine methods, outside polyps)",
                analysis.PRECISION: "ours (chapter 8: faster on CPUs with native bf16)"}
    rows = []
    for profile in STORED_PROFILES:
        cross, ablations, sam, check = (stored(profile, n, results_dir)
                                        for n in ("cross-dataset", "ablations", "polyp-sam", "precision"))
        found = []
        converged = stored(profile, "convergence", results_dir) if profile == "lite" else None
        complete = converged is not None and converged.results and not missing_runs(converged.campaign,
                                                                                   converged.results)
        if converged is not None and converged.results:  # the converged comparison is the claim's evidence
            name = "convergence" if complete else f"convergence ({converged.coverage()}: not all seeds yet)"
            found.append((name, analysis.generalisation_verdict(converged)))
        if cross.results and not complete:  # the 10-epoch first look until every converged run is stored
            found.append(("cross-dataset", analysis.generalisation_verdict(cross)))
        if ablations.results and cross.results:
            found.append(("ablations", ablation_verdict(ablations, [cross, check])))
        moved = stored(profile, "transfer", results_dir)
        if transfer.arms(moved.results):  # the paper's question, asked of a pretrained model
            found += [("transfer", v) for v in transfer.transfer_verdicts(moved.results, profile)]
        elif sam.results:
            found.append(("polyp-sam", analysis.sam_strategy_verdict(sam)))
        same = analysis.precision_verdict(check, cross) if cross.results else None
        if same:
            found.append(("precision", same))
        rows += [{"claim": v.claim, "paper's evidence": evidence.get(v.claim, ""), "profile": profile,
                  "campaign": name, "our evidence": v.evidence, "verdict": v.outcome} for name, v in found]
    return pd.DataFrame(rows, columns=["claim", "paper's evidence", "profile", "campaign", "our evidence", "verdict"])
