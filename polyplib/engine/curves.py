"""Training curves plotted from a run's `log.jsonl`."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402


def read_log(log_path: str | Path) -> list[dict]:
    """The per-epoch rows of a training log."""
    return [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]


def plot_curves(log_path: str | Path, out: str | Path | None = None):
    """Loss (train and validation), validation Dice and learning rate per epoch; saved to `out` when given."""
    rows = read_log(log_path)
    epochs = [row["epoch"] + 1 for row in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot(epochs, [row["train_loss"] for row in rows], marker="o", label="train")
    val = [(row["epoch"] + 1, row["val_loss"]) for row in rows if "val_loss" in row]
    if val:
        axes[0].plot(*zip(*val), marker="s", label="validation")
    axes[0].set(title="loss", xlabel="epoch")
    axes[0].legend()
    dice = [(row["epoch"] + 1, row["val_dice"]) for row in rows if "val_dice" in row]
    if dice:
        axes[1].plot(*zip(*dice), marker="s", color="tab:green")
    axes[1].set(title="validation Dice (threshold 0.5)", xlabel="epoch", ylim=(0, 1))
    axes[2].plot(epochs, [row["lr"] for row in rows], color="tab:red")
    axes[2].set(title="learning rate", xlabel="epoch", yscale="log")
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=120)
    return fig
