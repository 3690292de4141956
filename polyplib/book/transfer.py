"""Polyp-SAM's question (Li et al. 2023, Table 1) on a pretrained model: the `transfer` campaign's arms (zero-shot,
decoder-only, LoRA, full) on the unseen centre's held-out sequences, paired by fold, with sequence-level inference.
Pure functions of stored results, tested on fabricated ones."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from polyplib.book.analysis import OUTCOMES, Verdict, units
from polyplib.campaigns.records import RunResult
from polyplib.stats import EQUIVALENCE_MARGIN, paired_comparison, paired_seed_comparison

ZERO_SHOT = "zero-shot"
BOX_FILL = "box-fill"  # the prompt box itself as the mask: what a model must beat to have used the image
MONAI_DICE = "monaiDice"  # Polyp-SAM's printed protocol (MONAI's Dice on [1, H, W])
ARMS = (ZERO_SHOT, "decoder", "lora", "full")
TRANSFER_FULL = "full fine-tuning beats decoder-only when a pretrained promptable segmenter is transferred to an unseen " \
                "centre (Polyp-SAM's question)"
LORA_MATCH = "LoRA on the image encoder matches full fine-tuning within ±0.02 Dice at a fraction of its trainable " \
             "parameters (beyond the paper)"


def _fold(result: RunResult) -> int:
    return int(result.spec.config["dataset_options"].get("split_seed", 0))


def arms(results: list[RunResult]) -> list[RunResult]:
    """The fine-tuning runs of a `transfer` campaign (trained on a fold of the `sequences` split)."""
    return [r for r in results if r.spec.config.get("protocol") == "sequences"]


def _pretrained(results: list[RunResult]) -> RunResult | None:
    """The pretraining run the arms started from (None on `full`, where they start from SAM's weights)."""
    ids = {r.pretraining.run_id for r in arms(results) if r.pretraining is not None}
    found = [r for r in results if r.run_id in ids]
    return found[0] if found else None


def transfer_frame(results: list[RunResult], prompt: str = "gt-box", metric: str = "dice") -> pd.DataFrame:
    """One row per arm x fold x held-out image: `arm`, `seed`, `fold`, `id`, `unit` (video segment, else the image)
    and `value`; the zero-shot rows are the pretrained run's scores on each fold's held-out images (a subset of its
    test on every image of the unseen centre), paired with the arms of that fold."""
    rows, held_out = [], {}
    for result in arms(results):
        key = result.spec.tests[0]["key"]
        entry = result.entry(key, prompt)
        fold, scores = _fold(result), entry.per_image
        held_out[fold] = (key, result.labels["seed"], scores["id"])
        rows += [{"arm": result.labels["strategy"], "seed": result.labels["seed"], "fold": fold, "id": i, "value": v}
                 for i, v in zip(scores["id"], scores[metric])]
    pretrained = _pretrained(results)
    for fold, (key, seed, ids) in held_out.items():
        entry = None if pretrained is None else next(
            (e for e in pretrained.tests if e.key == key and e.split is None and e.prompt == prompt), None)
        if entry is not None:
            score = dict(zip(entry.per_image["id"], entry.per_image[metric]))
            rows += [{"arm": ZERO_SHOT, "seed": seed, "fold": fold, "id": i, "value": score[i]} for i in ids
                     if i in score]
    frame = pd.DataFrame(rows, columns=["arm", "seed", "fold", "id", "value"])
    if frame.empty:
        return frame.assign(unit=pd.Series(dtype=int))
    labels, name = units(next(iter(held_out.values()))[0], frame["id"])
    frame = frame.assign(unit=labels, value=frame["value"].astype(float))
    frame.attrs["units"] = name
    return frame


def trainable_parameters(result: RunResult) -> int:
    """Parameters a run's strategy trains (its model rebuilt without weights)."""
    from polyplib.models import create_architecture, parameter_counts

    config = result.spec.config
    return parameter_counts(create_architecture(config["model"], **config["model_options"]))["trainable_params"]


def _cost(result: RunResult) -> dict[str, float]:
    history = result.train.history
    steps = history[-1]["step"] if history else 0
    seconds = sum(row.get("train_time_s", 0.0) for row in history)
    return {"s/step": seconds / steps if steps else float("nan"),
            "peak memory (MB)": max((row.get("peak_mem_mb") or 0.0 for row in history), default=float("nan"))}


def pretraining_table(results: list[RunResult], prompt: str = "gt-box") -> pd.DataFrame:
    """The pretrained model the arms start from, per test set (source test split, every frame of the unseen centre):
    Dice under both protocols, the epoch selected on the source validation split, and the plateau check (best
    validation Dice of the last `PLATEAU_WINDOW` epochs minus the best before them). Empty on `full` (SAM's weights)."""
    from polyplib.book.convergence import PLATEAU_WINDOW

    pretrained = _pretrained(results)
    if pretrained is None:
        return pd.DataFrame()
    dice = [row["val_dice"] for row in pretrained.train.history if "val_dice" in row]
    gain = max(dice[-PLATEAU_WINDOW:]) - max(dice[:-PLATEAU_WINDOW]) if len(dice) > PLATEAU_WINDOW else float("nan")
    fill = {e.key: e.means.get("dice") for e in pretrained.tests if e.prompt == BOX_FILL}
    return pd.DataFrame([{"test": e.key, "images": e.n, "dice": e.means.get("dice"),
                          MONAI_DICE: e.means.get(MONAI_DICE, float("nan")),
                          "box-fill dice": fill.get(e.key, float("nan")),
                          "selected epoch": pretrained.train.best_epoch, "epochs": len(dice),
                          "best val Dice": pretrained.train.best_metric, f"val gain, last {PLATEAU_WINDOW}": gain}
                         for e in pretrained.tests if e.prompt == prompt])


def _fold_means(results: list[RunResult], prompt: str, metric: str) -> dict[str, np.ndarray]:
    """Per arm, the held-out mean of each fold (empty when the stored per-image scores lack the metric)."""
    try:
        frame = transfer_frame(results, prompt, metric)
    except KeyError:
        return {}
    return {arm: part.groupby("fold")["value"].mean().to_numpy() for arm, part in frame.groupby("arm")}


def arm_table(results: list[RunResult], prompt: str = "gt-box", metric: str = "dice") -> pd.DataFrame:
    """Per arm: mean ± sd over folds of the held-out mean (and the mean under Polyp-SAM's MONAI protocol when stored),
    folds, held-out units, trainable parameters, the epoch each fold selected on its validation segment (with that
    segment's Dice: a segment of small polyps gives selection little to go on), seconds per optimiser step and peak
    memory (process RSS on a CPU)."""
    frame = transfer_frame(results, prompt, metric)
    if frame.empty:
        return pd.DataFrame()
    monai = _fold_means(results, prompt, MONAI_DICE) if metric == "dice" else {}
    costs = {r.labels["strategy"]: [] for r in arms(results)}
    params, selected = {}, {}
    for result in sorted(arms(results), key=_fold):
        strategy = result.labels["strategy"]
        costs[strategy].append(_cost(result))
        selected.setdefault(strategy, []).append(
            f"{result.train.best_epoch}/{result.train.epochs} ({result.train.best_metric:.3f})")
        params.setdefault(strategy, trainable_parameters(result))
    rows = []
    for arm in [a for a in ARMS if a in set(frame["arm"])]:
        part = frame[frame["arm"] == arm]
        per_fold = part.groupby("fold")["value"].mean().to_numpy()
        cost = pd.DataFrame(costs.get(arm, [])).mean() if costs.get(arm) else pd.Series(dtype=float)
        rows.append({"arm": arm, f"{metric} mean": per_fold.mean(),
                     "sd (folds)": per_fold.std(ddof=1) if len(per_fold) > 1 else float("nan"),
                     **({f"{MONAI_DICE} mean": monai[arm].mean()} if arm in monai else {}),
                     "folds": len(per_fold), "units": part.groupby("fold")["unit"].nunique().sum(),
                     "trainable parameters": params.get(arm, 0),
                     "selected epoch (val Dice)": ", ".join(selected.get(arm, [])),
                     "s/step": cost.get("s/step", float("nan")),
                     "peak memory (MB)": cost.get("peak memory (MB)", float("nan"))})
    return pd.DataFrame(rows)


def compare_arms(frame: pd.DataFrame, a: str, b: str, margin: float = EQUIVALENCE_MARGIN) -> dict[str, Any] | None:
    """Arm `a` minus arm `b` on the same held-out images of the same folds: the cluster-bootstrap CI over video
    segments (pooled over folds; a segment held out in two folds is one cluster), the paired t test over folds with its
    minimum detectable effect, and paired TOST against ±`margin`; None when the two arms share no fold."""
    pair = frame[frame["arm"].isin((a, b))].pivot_table(index=["fold", "id", "unit"], columns="arm", values="value")
    if a not in pair or b not in pair:
        return None
    pair = pair.dropna(subset=[a, b]).reset_index()
    if pair.empty:
        return None
    images = paired_comparison(pair[a], pair[b], pair["unit"])
    folds = pair.groupby("fold")[[a, b]].mean()
    seeds = paired_seed_comparison(folds[a].to_numpy(), folds[b].to_numpy(), margin=margin)
    return {"comparison": f"{a} − {b}", "diff": images["diff"], "ci_low": images["ci_low"],
            "ci_high": images["ci_high"], "units": images["units"], "unit": frame.attrs.get("units", "images"),
            "folds": seeds["n"], "fold p": seeds["p"],
            "mde": seeds["mde"], "tost p": seeds["tost_p"], "equivalence": seeds["outcome"]}


def _outcome(row: dict[str, Any]) -> str:
    """supported when the unit CI and the fold test agree on a gain, contradicted when both show a loss."""
    clear = row["fold p"] == row["fold p"] and row["fold p"] < 0.05
    if clear and row["ci_low"] > 0:
        return OUTCOMES[0]
    if clear and row["ci_high"] < 0:
        return OUTCOMES[1]
    return OUTCOMES[2]


def _evidence(row: dict[str, Any]) -> str:
    test = (f"fold p {row['fold p']:.2g}, MDE {row['mde']:.3f}" if row["fold p"] == row["fold p"]
            else "one fold: no test over folds")
    return (f"{row['comparison']} {row['diff']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] over "
            f"{row['units']} {row['unit']}, {row['folds']} fold{'s' if row['folds'] != 1 else ''} ({test})")


def comparison_table(results: list[RunResult], prompt: str = "gt-box") -> pd.DataFrame:
    """Every fine-tuned arm against zero-shot, full against decoder-only, LoRA against full and decoder-only."""
    frame = transfer_frame(results, prompt)
    pairs = [("decoder", ZERO_SHOT), ("lora", ZERO_SHOT), ("full", ZERO_SHOT), ("full", "decoder"),
             ("lora", "full"), ("lora", "decoder")]
    rows = [row for row in (compare_arms(frame, a, b) for a, b in pairs) if row is not None]
    return pd.DataFrame([{**row, "outcome": _outcome(row)} for row in rows])


def _row(table: pd.DataFrame, name: str) -> dict[str, Any] | None:
    found = table[table["comparison"] == name] if not table.empty else table
    return None if found.empty else found.iloc[0].to_dict()


def transfer_verdicts(results: list[RunResult], profile: str, table: pd.DataFrame | None = None) -> list[Verdict]:
    """The paper's claim (full > decoder-only) and LoRA ≈ full, on ground-truth boxes."""
    table = comparison_table(results) if table is None else table
    full = _row(table, "full − decoder")
    lora = _row(table, "lora − full")
    if full is None:
        text = f"**What the `{profile}` transfer results say.** Nothing to compare yet."
        return [Verdict(TRANSFER_FULL, "inconclusive", "not measured", text),
                Verdict(LORA_MATCH, "not shown either way", "not measured", text)]
    outcome = _outcome(full)
    sentence = {"supported": "the gain stands out of the spread over folds and of the sequence-level interval.",
                "contradicted": "decoder-only is better, beyond the spread over folds and the sequence-level interval.",
                "inconclusive": f"the design cannot tell: a true difference below about {full['mde']:.3f} Dice "
                                "would go undetected at 80 % power." if full["mde"] == full["mde"] else
                                "with one fold there is no test over folds."}[outcome]
    verdicts = [Verdict(TRANSFER_FULL, outcome, _evidence(full),
                        f"**Full vs decoder-only ({profile}, ground-truth boxes).** {_evidence(full)}: **{outcome}**; "
                        + sentence, {"comparisons": table})]
    if lora is None:
        verdicts.append(Verdict(LORA_MATCH, "not shown either way", "LoRA not stored yet",
                                f"**LoRA vs full ({profile}).** LoRA runs are not stored yet."))
        return verdicts
    same = lora["equivalence"]
    tost = f"paired TOST p {lora['tost p']:.2g}" if lora["tost p"] == lora["tost p"] else "no TOST with one fold"
    verdicts.append(Verdict(
        LORA_MATCH, same, f"{_evidence(lora)}; {tost}",
        f"**LoRA vs full ({profile}, ground-truth boxes).** {_evidence(lora)}; margin ±{EQUIVALENCE_MARGIN:.2f} Dice, "
        f"{tost}: **{same}**."))
    return verdicts


def prompt_table(results: list[RunResult], prompts: tuple[str, ...]) -> pd.DataFrame:
    """Mean held-out Dice of every arm under each prompt (GT box, jittered boxes, cascade, the filled box alone), mean
    over folds."""
    rows = []
    for prompt in prompts:
        frame = transfer_frame(results, prompt)
        for arm in [a for a in ARMS if a in set(frame["arm"])]:
            per_fold = frame[frame["arm"] == arm].groupby("fold")["value"].mean()
            rows.append({"prompt": prompt, "arm": arm, "dice": float(np.mean(per_fold))})
    return pd.DataFrame(rows).pivot(index="arm", columns="prompt", values="dice").reindex(
        [a for a in ARMS if a in {r["arm"] for r in rows}])[list(prompts)] if rows else pd.DataFrame()


def box_fill_reading(results: list[RunResult]) -> str:
    """Each arm's held-out Dice (ground-truth boxes) against the box itself filled as the mask on the same images."""
    fill = transfer_frame(results, BOX_FILL)
    table = arm_table(results)
    if fill.empty or table.empty:
        return ""
    box = fill[fill["arm"] == fill["arm"].iloc[0]].groupby("fold")["value"].mean().mean()
    means = dict(zip(table["arm"], table["dice mean"]))
    above = [f"{arm} ({d:.3f})" for arm, d in means.items() if d > box]
    below = [f"{arm} ({d:.3f})" for arm, d in means.items() if d <= box]
    text = f"**The box itself.** Filling the ground-truth box scores {box:.3f} Dice on the same held-out images."
    if above:
        text += f" Above it: {', '.join(above)}."
    if below:
        text += (f" Not above it: {', '.join(below)}: a model that scores below its own prompt has not learned to "
                 "outline the polyp inside the box better than the box does.")
    return text
