"""Training to convergence (the `convergence` campaign): the test sets' scores a run stored at fixed epochs beside its
validation curve, and whether validation Dice stopped rising (pure: tables and a figure, no display)."""
from __future__ import annotations

from typing import Any

import pandas as pd

from polyplib.campaigns.records import RunResult

PLATEAU_WINDOW = 5  # epochs: the last ones, compared with every epoch before them
PLATEAU_GAIN = 0.005  # validation Dice: plateaued when the last epochs beat the earlier best by less than this
SELECTED = "selected"  # the point of the checkpoint chosen on the source validation split


def _labels(result: RunResult) -> dict[str, Any]:
    return {"model": result.labels.get("model"), "seed": result.labels.get("seed"), "run_id": result.run_id}


def point_scores(results: list[RunResult], metric: str = "dice") -> pd.DataFrame:
    """One row per run x test point x test set: model, seed, run id, test, point (the epoch, or `selected` at the
    selected checkpoint's epoch), epoch and the metric's mean over the test set."""
    rows = []
    for result in results:
        points = [(str(p.epoch), p.epoch, p.tests) for p in result.tests_at_epoch]
        points.append((SELECTED, result.train.best_epoch, result.tests))
        rows += [{**_labels(result), "test": entry.key, "point": point, "epoch": epoch,
                  metric: entry.means.get(metric)} for point, epoch, entries in points for entry in entries]
    return pd.DataFrame(rows, columns=["model", "seed", "run_id", "test", "point", "epoch", metric])


def validation_curves(results: list[RunResult], metric: str = "val_dice") -> pd.DataFrame:
    """One row per run x epoch (1-based, as test points count them): model, seed, run id, epoch, validation metric."""
    rows = [{**_labels(result), "epoch": row["epoch"] + 1, metric: row[metric]}
            for result in results for row in result.train.history if metric in row]
    return pd.DataFrame(rows, columns=["model", "seed", "run_id", "epoch", metric])


def plateau_table(results: list[RunResult], window: int = PLATEAU_WINDOW, gain: float = PLATEAU_GAIN
                  ) -> pd.DataFrame:
    """Per run: epochs, selected epoch, best validation Dice, its gain over the last `window` epochs (their best minus
    the best before them) and whether that gain is below `gain` (too few epochs: no gain, not plateaued)."""
    curves = validation_curves(results)
    rows = []
    for result in results:
        dice = curves.loc[curves["run_id"] == result.run_id, "val_dice"].tolist()
        rise = max(dice[-window:]) - max(dice[:-window]) if len(dice) > window else float("nan")
        rows.append({**_labels(result), "epochs": len(dice), "selected epoch": result.train.best_epoch,
                     "best val_dice": max(dice, default=float("nan")), f"gain over last {window}": rise,
                     "plateaued": bool(rise < gain)})
    return pd.DataFrame(rows)


def stopping_reading(results: list[RunResult], window: int = PLATEAU_WINDOW, gain: float = PLATEAU_GAIN) -> str:
    """What the curves say about stopping, in words: how many runs met the plateau check, the epochs selected and the
    learning rate after the last rise, and whether the models' order on each test set is the same at every test point
    (one order throughout: more epochs of this schedule did not change it, whatever they would do to the level)."""
    if not results:
        return ""
    plateau = plateau_table(results, window, gain)
    epochs = sorted(set(plateau["epochs"]))
    selected = plateau["selected epoch"]
    lrs = [row.get("lr") for result in results for row in result.train.history[result.train.best_epoch:]]
    lrs = [lr for lr in lrs if lr is not None]
    text = (f"**Stopping.** {int(plateau['plateaued'].sum())} of {len(plateau)} runs met the plateau check (best "
            f"validation Dice of the last {window} epochs less than {gain} above the best before them). The selected "
            f"epochs are {selected.min()}-{selected.max()} of {'/'.join(map(str, epochs))}")
    if lrs:
        text += f"; after them the learning rate was at most {max(lrs):.2g}, so the decaying schedule, not a plateau, ended learning"
    points = point_scores(results)
    models = list(dict.fromkeys(points["model"]))
    if len(models) != 2:
        return text + "."
    fixed = points[points["point"] != SELECTED]
    means = fixed.groupby(["test", "epoch", "model"], sort=False)["dice"].mean().unstack("model")[models]
    gaps = (means[models[0]] - means[models[1]]).round(3)
    orders = []
    for test, gap in gaps.groupby(level="test", sort=False):
        signs = set((gap > 0).tolist())
        listed = ", ".join(f"{g:+.3f}" for g in gap.tolist())
        at = "/".join(str(e) for e in gap.index.get_level_values("epoch"))
        order = (f"{models[0] if signs == {True} else models[1]} ahead at every test point" if len(signs) == 1 else
                 "the order changes between test points")
        orders.append(f"{test}: {order} ({models[0]} − {models[1]} at epochs {at}: {listed}; mean over seeds)")
    return text + ". Test Dice, " + "; ".join(orders) + "."


def points_table(results: list[RunResult], metric: str = "dice") -> pd.DataFrame:
    """Mean and sd over seeds of the metric at every test point, per test set and model (epoch: the test point's, or
    the mean selected epoch)."""
    frame = point_scores(results, metric)
    table = (frame.groupby(["test", "model", "point"], sort=False)
             .agg(epoch=("epoch", "mean"), mean=(metric, "mean"), sd=(metric, "std"), seeds=("seed", "nunique"))
             .reset_index())
    order = table["point"].map(lambda p: float("inf") if p == SELECTED else int(p))
    table = table.assign(order=order).sort_values(["test", "model", "order"], kind="stable")
    return table.drop(columns="order").reset_index(drop=True)


def convergence_curves(results: list[RunResult], metric: str = "dice"):
    """The table (`points_table`) and a figure: validation Dice per epoch, then each test set's metric at the test
    points, every model (colour) and seed (thin), the mean over seeds (thick), the selected checkpoints as stars."""
    import matplotlib.pyplot as plt

    points, curves = point_scores(results, metric), validation_curves(results)
    tests = list(dict.fromkeys(points["test"]))
    fig, axes = plt.subplots(1, 1 + len(tests), figsize=(3.6 * (1 + len(tests)), 3.2), sharex=True, squeeze=False)
    panels = [(axes[0, 0], curves, "val_dice", "validation (source val split)")]
    panels += [(ax, points[points["test"] == test], metric, f"test: {test}") for ax, test in zip(axes[0, 1:], tests)]
    for ax, frame, column, title in panels:
        for i, (model, part) in enumerate(frame.groupby("model", sort=False)):
            chosen = part[part["point"] == SELECTED] if "point" in part else part.iloc[:0]
            fixed = part.drop(chosen.index)
            for _, seed in fixed.groupby("seed"):
                ax.plot(seed["epoch"], seed[column], color=f"C{i}", alpha=0.35, linewidth=0.8)
            mean = fixed.groupby("epoch")[column].mean()
            ax.plot(mean.index, mean.values, color=f"C{i}", marker="o", markersize=3, linewidth=2, label=str(model))
            ax.scatter(chosen["epoch"], chosen[column], color=f"C{i}", marker="*", s=60, zorder=3)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
    axes[0, 0].set_ylabel("Dice")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return points_table(results, metric), fig
