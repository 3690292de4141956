"""The chapters' figures of stored campaigns: generalisation gap, learning curves, box jitter (pure: return figures)."""
from __future__ import annotations

import pandas as pd

from polyplib.book.results import CampaignView


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
    """Training loss and the validation metric per epoch (source validation split), mean ± sd over seeds."""
    from polyplib import viz

    rows = [{by: r.labels.get(by), "seed": r.labels.get("seed"), **row}
            for r in view.results for row in r.train.history if metric in row]
    frame = pd.DataFrame(rows)
    return viz.curves(frame.assign(epoch=frame["epoch"] + 1), groups={c.replace("_", " "): [c] for c in
                                                                      ("train_loss", metric)}, by=by)


def jitter_figure(frame: pd.DataFrame):
    """Dice against the box jitter (0 = the ground-truth box), per strategy and test set, mean ± sd over seeds."""
    import matplotlib.pyplot as plt

    jitter = frame[frame["prompt"].str.startswith(("gt-box", "jitter"))].copy()
    jitter["jitter"] = jitter["prompt"].map(lambda p: 0.0 if p == "gt-box" else float(p.split("-")[1]))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for (strategy, test), part in jitter.groupby(["strategy", "test"], sort=False):
        stats = part.groupby("jitter")["dice"].agg(["mean", "std"]).fillna(0.0)
        ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=3, label=f"{strategy}, {test}")
    ax.set_xlabel("box jitter (fraction of the box side)")
    ax.set_ylabel("dice (mean ± sd over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
