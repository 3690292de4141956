"""Tables from the store: one row per run x test set x prompt, means and sd over seeds, per-image scores."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from polyplib.campaigns.declared import Campaign
from polyplib.campaigns.records import RunResult

LABEL_ORDER = ("model", "strategy", "train", "seed")


def short_commit(commit: str | None) -> str:
    """The first 10 hex digits of a recorded commit, keeping its `+dirty` or ` (copy)` mark."""
    if not commit:
        return "unknown"
    return commit[:10] + next((mark for mark in ("+dirty", " (copy)") if commit.endswith(mark)), "")


def result_rows(results: list[RunResult]) -> "pd.DataFrame":
    """Summary means of stored results: labels, test set, kind (source / unseen), prompt and every metric."""
    import pandas as pd

    rows = []
    for result in results:
        for entry in result.tests:
            kind = "source" if entry.split == "test" else "unseen"
            rows.append({"run_id": result.run_id, **result.labels, "test": entry.key, "kind": kind,
                         "prompt": entry.prompt, "n": entry.n, **entry.means, "best_epoch": result.train.best_epoch})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    if (frame["prompt"] == "none").all():
        frame = frame.drop(columns="prompt")
    return frame


def aggregate(frame: "pd.DataFrame", metrics: tuple[str, ...] | list[str],
              by: tuple[str, ...] | None = None) -> "pd.DataFrame":
    """Mean and sd over seeds of each metric (`<metric>` and `<metric>_sd` columns, `seeds` = runs averaged)."""
    if frame.empty:
        return frame
    by = list(by or [c for c in (*LABEL_ORDER, "test", "kind", "prompt") if c in frame and c != "seed"])
    grouped = frame.groupby(by, sort=False)
    out = grouped[list(metrics)].mean()
    sd = grouped[list(metrics)].std(ddof=1).add_suffix("_sd")
    out = out.join(sd)
    out["seeds"] = grouped.size()
    ordered = [c for m in metrics for c in (m, f"{m}_sd")]
    return out[[*ordered, "seeds"]].reset_index()


def per_image(results: list[RunResult], test: str, prompt: str = "none") -> "pd.DataFrame":
    """Per-image scores on one test set (and prompt): one row per run and image, labels beside the scores."""
    import pandas as pd

    frames = []
    for result in results:
        for entry in result.tests:
            if entry.key == test and entry.prompt == prompt:
                part = pd.DataFrame(entry.per_image)
                for key, value in result.labels.items():
                    part[key] = value
                part["run_id"] = result.run_id
                frames.append(part)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def recipe_name(result: RunResult) -> str:
    """How a stored run was trained: `bf16 + channels-last`, `fp32 NCHW`, ..."""
    from polyplib.engine.precision import channels_last_for

    config = result.spec.config
    device_type = "cpu" if result.provenance.device == "cpu" else "cuda"
    layout = " + channels-last" if channels_last_for(config.get("channels_last"), device_type, config["precision"]) \
        else " NCHW"
    return f"{config['precision']}{layout}"


def provenance_table(results: list[RunResult]) -> "pd.DataFrame":
    """Training recipe, commit, machine, device, date, training time (every sitting) and speed of every stored run."""
    import pandas as pd

    rows = []
    for r in results:
        p = r.provenance
        rows.append({"run_id": r.run_id, **r.labels, "recipe": recipe_name(r), "commit": short_commit(p.commit),
                     "machine": p.machine, "device": p.device, "date": p.date, "train_s": p.train_s,
                     "images_per_s": p.images_per_s})
    return pd.DataFrame(rows)


def missing_runs(campaign: Campaign, results: list[RunResult]) -> list:
    """The declared runs no result fulfils (a run is present when a result of a recipe it resolves to is)."""
    present = {r.run_id for r in results}
    return [spec for spec in campaign.runs if not any(form.run_id in present for form in spec.equivalents())]


def coverage(campaign: Campaign, results: list[RunResult]) -> str:
    """`k of n runs present` for a campaign."""
    return f"{len(campaign.runs) - len(missing_runs(campaign, results))} of {len(campaign.runs)} runs present"
