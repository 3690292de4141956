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
    import matplotlib.pyplot as plt

    rows = [{by: r.labels.get(by), "seed": r.labels.get("seed"), **row}
            for r in view.results for row in r.train.history if metric in row]
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
