"""Figures of trained runs that need the data and the checkpoints: rendered once where both are, stored as small PNGs
with their provenance under `results/<profile>/figures/`, and shown by the chapters on any machine."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from polyplib import viz
from polyplib.atomic import atomic_write, write_json_atomic
from polyplib.book.results import RESULTS_DIR, stored
from polyplib.campaigns import MODEL_LABELS, default_work
from polyplib.errors import ConfigError



def figure_dir(profile: str, results_dir: str | Path | None = None) -> Path:
    return Path(results_dir or RESULTS_DIR) / profile / "figures"


def pick_frames(result: dict[str, Any], test: str, metric: str = "dice") -> dict[str, str]:
    """Ids of the best, median and worst image of a stored run on one test set, by its per-image `metric`."""
    entry = next((e for e in result["tests"] if e["key"] == test and e["prompt"] == "none"), None)
    if entry is None:
        raise ConfigError(f"run {result['run_id']} has no scores on {test!r}")
    order = sorted(range(entry["n"]), key=lambda i: (entry["per_image"][metric][i], entry["per_image"]["id"][i]))
    ids = entry["per_image"]["id"]
    return {"best": ids[order[-1]], "median": ids[order[len(order) // 2]], "worst": ids[order[0]]}


def _seed0(view, model: str) -> dict[str, Any] | None:
    return next((r for r in view.results if r["spec"]["labels"].get("model") == model
                 and r["spec"]["labels"].get("seed") == view.settings.seeds[0]), None)


def _save(fig, path: Path, meta: dict[str, Any]) -> Path:
    import matplotlib.pyplot as plt

    from polyplib.engine.provenance import provenance

    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    write_json_atomic(path.with_suffix(".json"), {"figure": path.name, **provenance(), **meta})
    return path


def render_figures(profile: str, *, data_root: str | None = None, results_dir: str | Path | None = None,
                   work: str | Path | None = None) -> list[Path]:
    """Best / median / worst unseen-centre frames for GMSRF-Net vs the first baseline (U-Net), and CMSA maps of the
    trained GMSRF-Net (seed-0 runs of the stored cross-dataset campaign and their checkpoints)."""
    from polyplib.book.architecture import trace_gmsrf
    from polyplib.book.data import load
    from polyplib.book.experiments import load_model, predict
    from polyplib.book.profiles import profile_settings

    settings = profile_settings(profile, data_root=data_root)
    view = stored(profile, "cross-dataset", results_dir)
    work = Path(work) if work else default_work()
    pair = ("GMSRF-Net", MODEL_LABELS[settings.baselines[0]])  # the models the qualitative figure compares
    runs = {m: _seed0(view, m) for m in pair}
    missing = [m for m, r in runs.items() if r is None or not (work / r["run_id"] / "train" / "best.pt").is_file()]
    if missing:
        raise ConfigError(f"figures of {profile} need the stored runs and checkpoints (under {work}) of the seed-0 "
                          f"{', '.join(missing)}; run `polyplib campaign run {profile} cross-dataset` first")
    unseen = next(t["key"] for t in runs[pair[0]]["tests"] if t["split"] is None)
    picks = pick_frames(runs[pair[0]], unseen)
    dataset = load(settings, unseen)
    index = {p.id: i for i, p in enumerate(dataset.pairs)}
    items = [dataset[index[i]] for i in picks.values()]
    models = {m: load_model(work / r["run_id"] / "train" / "best.pt") for m, r in runs.items()}
    probs = {m: predict(model, items) for m, model in models.items()}
    labels = [f"{which}: {unseen} {i}" for which, i in picks.items()]
    meta = {"profile": profile, "runs": {m: r["run_id"] for m, r in runs.items()}, "test": unseen, "ids": picks}
    fig = viz.prediction_rows([t["image"] for t in items], [t["mask"] for t in items], probs, ids=labels)
    fig.suptitle(f"{unseen}: best, median and worst frame by GMSRF-Net's Dice ({profile}, from scratch)", fontsize=9,
                 y=1.02)
    written = [_save(fig, figure_dir(profile, results_dir) / "qualitative-unseen.png",
                     {**meta, "caption": f"Best, median and worst {unseen} frames (by the seed-0 GMSRF-Net's Dice): "
                                         "ground truth green, prediction red, over the probability map."})]
    trace = trace_gmsrf(models[pair[0]], items[0]["image"])
    last = max(layer for _, layer, _ in trace.cmsa)
    fig = viz.attention_maps({f"scale {s}": trace.cmsa[(2, last, s)] for s in range(1, 5)}, image=items[0]["image"],
                             ncols=5, title=f"CMSA maps of the trained GMSRF-Net ({profile}), module 2, layer {last}")
    written.append(_save(fig, figure_dir(profile, results_dir) / "cmsa-unseen.png",
                         {**meta, "caption": f"CMSA maps (module 2, layer {last}, scales 1-4) of the seed-0 GMSRF-Net "
                                             f"on the best {unseen} frame {picks['best']}."}))
    return written


def show_figure(profile: str, name: str, results_dir: str | Path | None = None) -> bool:
    """Display a stored figure with its caption and provenance (False, with a line saying so, when absent)."""
    from IPython.display import Image, Markdown, display

    path = figure_dir(profile, results_dir) / f"{name}.png"
    if not path.is_file():
        display(Markdown(f"*No stored `{name}` figure for profile `{profile}` yet* (`polyplib book --profile "
                         f"{profile} --figures` renders it where the data and the checkpoints are)."))
        return False
    meta = json.loads(path.with_suffix(".json").read_text())
    display(Image(filename=str(path)))
    display(Markdown(f"{meta['caption']} Runs {', '.join(f'{m} `{i}`' for m, i in meta['runs'].items())}; commit "
                     f"`{meta['commit'][:10]}`, {meta['date'][:10]}."))
    return True
