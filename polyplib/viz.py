"""Figures and tables shared by the book's chapters: overlays, example grids, curves, attention maps, bars, tables."""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from polyplib.errors import ConfigError

GT_COLOUR = "#2ca02c"
PRED_COLOUR = "#d62728"
BOX_COLOUR = "#ffbf00"
FIG_DPI = 72


def set_style() -> None:
    """Book-wide plot style: seaborn whitegrid, modest dpi (small embedded PNGs), no file-name metadata."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams.update({"figure.dpi": FIG_DPI, "savefig.dpi": FIG_DPI, "figure.max_open_warning": 0})


def to_numpy_image(image: Any) -> np.ndarray:
    """A `[3, H, W]` tensor/array in [0, 1] (or `[H, W, 3]`, or `[H, W]`) as an `[H, W, C]`/`[H, W]` float array."""
    array = to_numpy_array(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise ConfigError(f"expected an image [3, H, W], [H, W, 3] or [H, W], got shape {tuple(array.shape)}")
    return array


def overlay(image: Any, mask: Any = None, pred: Any = None, box: Any = None, ax: plt.Axes | None = None,
            title: str | None = None) -> plt.Axes:
    """Image with the ground-truth outline (green), predicted outline (red, thresholded at 0.5) and box prompt."""
    ax = ax or plt.subplots(figsize=(3, 3))[1]
    ax.imshow(np.clip(to_numpy_image(image), 0, 1), cmap="gray", vmin=0, vmax=1)
    _outline(ax, mask, GT_COLOUR)
    _outline(ax, pred, PRED_COLOUR)
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in np.asarray(box, dtype=float).reshape(4))
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color=BOX_COLOUR, linewidth=1.5))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def _outline(ax: plt.Axes, layer: Any, colour: str) -> None:
    """Draw the 0.5 iso-line of a mask or probability map (nothing when it is absent, empty or full)."""
    if layer is None:
        return
    binary = to_numpy_image(layer) > 0.5
    if binary.any() and not binary.all():
        ax.contour(binary.astype(float), levels=[0.5], colors=colour, linewidths=1.5)


def _grid(n: int, ncols: int, size: float = 2.2) -> tuple[Figure, np.ndarray]:
    """A figure with at least `n` square panels in rows of `ncols`; unused panels hidden."""
    if n < 1:
        raise ConfigError("nothing to plot: the list of images is empty")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


def example_grid(samples: Sequence[Mapping[str, Any]], ncols: int = 4, title: str | None = None,
                 preds: Sequence[Any] | None = None, boxes: Sequence[Any] | None = None) -> Figure:
    """Dataset samples (dicts with `image`, `mask`, optional `id`) with outlines; optional predictions and boxes."""
    if preds is not None and len(preds) != len(samples):
        raise ConfigError(f"{len(preds)} predictions for {len(samples)} samples")
    fig, axes = _grid(len(samples), ncols)
    for i, (ax, sample) in enumerate(zip(axes, samples)):
        overlay(sample["image"], sample.get("mask"), None if preds is None else preds[i],
                None if boxes is None else boxes[i], ax=ax, title=str(sample.get("id", "")))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def prediction_rows(images: Sequence[Any], masks: Sequence[Any], probs: Mapping[str, Sequence[Any]],
                    ids: Sequence[str] | None = None) -> Figure:
    """Qualitative results: one row per image; columns = image + GT, then each model's probability map with outlines."""
    n, names = len(images), list(probs)
    fig, axes = plt.subplots(n, 1 + len(names), figsize=(2.2 * (1 + len(names)), 2.2 * n), squeeze=False)
    for r in range(n):
        overlay(images[r], masks[r], ax=axes[r, 0], title=(ids[r] if ids else "image + GT"))
        for c, name in enumerate(names, start=1):
            ax = axes[r, c]
            ax.imshow(to_numpy_image(probs[name][r]), cmap="gray", vmin=0, vmax=1)
            _outline(ax, masks[r], GT_COLOUR)
            _outline(ax, probs[name][r], PRED_COLOUR)
            ax.set_title(name, fontsize=9)
            ax.set_axis_off()
    fig.tight_layout()
    return fig


def curves(history: pd.DataFrame | Sequence[Mapping[str, float]], x: str = "epoch",
           groups: Mapping[str, Sequence[str]] | None = None, by: str | None = None) -> Figure:
    """Training curves: one panel per group of columns (default: every `*loss*` column, then every other metric); with
    `by`, one line per value of that column: the mean over its rows at each `x` (e.g. seeds), ± sd shaded."""
    frame = pd.DataFrame(history)
    if x not in frame or (by is not None and by not in frame):
        raise ConfigError(f"history has no column {x if x not in frame else by!r}; columns are {list(frame.columns)}")
    numeric = [c for c in frame.columns if c not in (x, by) and pd.api.types.is_numeric_dtype(frame[c])]
    if groups is None:
        losses = [c for c in numeric if "loss" in c]
        groups = {"loss": losses, "metrics": [c for c in numeric if c not in losses]}
    groups = {k: v for k, v in groups.items() if v}
    missing = sorted({c for cols in groups.values() for c in cols} - set(frame.columns))
    if missing or not groups:
        raise ConfigError(f"history lacks columns {missing or 'to plot'}; columns are {list(frame.columns)}")
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3), squeeze=False)
    for ax, (name, cols) in zip(axes.flat, groups.items()):
        for col in cols:
            if by is None:
                ax.plot(frame[x], frame[col], marker="o", markersize=3, label=col)
                continue
            for value, part in frame.groupby(by, sort=False):
                stats = part.groupby(x)[col].agg(["mean", "std"]).fillna(0.0)
                label = str(value) if len(cols) == 1 else f"{value} {col}"
                ax.plot(stats.index, stats["mean"], marker="o", markersize=2, label=label)
                ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2)
        ax.set_xlabel(x)
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def feature_maps(features: Any, n: int = 8, title: str | None = None, ncols: int = 8) -> Figure:
    """The first `n` channels of one feature map `[C, H, W]` (or `[1, C, H, W]`), each min-max scaled."""
    array = to_numpy_array(features)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ConfigError(f"expected features [C, H, W], got shape {array.shape}")
    fig, axes = _grid(min(n, array.shape[0]), ncols, size=1.4)
    for c, ax in enumerate(axes):
        ax.imshow(array[c], cmap="viridis")
        ax.set_title(f"ch {c}", fontsize=7)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def to_numpy_array(value: Any) -> np.ndarray:
    """A tensor or array-like as a float32 numpy array."""
    return np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float32)


def attention_maps(maps: Mapping[str, Any], image: Any = None, ncols: int = 4, vmin: float | None = None,
                   vmax: float | None = None, title: str | None = None) -> Figure:
    """Spatial attention maps (e.g. CMSA, GMSRF Eq. 2-3), one panel each, upsampled over the image when given."""
    fig, axes = _grid(len(maps) + (image is not None), ncols, size=2.2)
    axes = list(axes)
    if image is not None:
        overlay(image, ax=axes.pop(0), title="input")
    arrays = {k: np.squeeze(to_numpy_array(v)) for k, v in maps.items()}
    lo = min(a.min() for a in arrays.values()) if vmin is None else vmin
    hi = max(a.max() for a in arrays.values()) if vmax is None else vmax
    for ax, (name, array) in zip(axes, arrays.items()):
        if array.ndim != 2:
            raise ConfigError(f"attention map {name!r} must be [H, W] (or squeezable to it), got {array.shape}")
        shown = ax.imshow(array, cmap="inferno", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"{name} {array.shape[0]}x{array.shape[1]}", fontsize=8)
        ax.set_axis_off()
    fig.colorbar(shown, ax=list(axes), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def seed_summary(frame: pd.DataFrame, by: str | Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean, standard deviation and number of seeds of each metric per group (rows = groups)."""
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by, *metrics] if c not in frame.columns]
    if missing:
        raise ConfigError(f"results lack columns {missing}; columns are {list(frame.columns)}")
    grouped = frame.groupby(by, sort=False)[list(metrics)]
    return grouped.agg(["mean", "std", "count"]).fillna({(m, "std"): 0.0 for m in metrics})


def bar_with_errors(frame: pd.DataFrame, x: str, metric: str, hue: str | None = None, ax: plt.Axes | None = None,
                    title: str | None = None) -> plt.Axes:
    """Bars of the mean of `metric` over seeds (rows), with ±1 standard-deviation error bars, grouped by `x` (and `hue`)."""
    keys = [x] + ([hue] if hue else [])
    stats = seed_summary(frame, keys, [metric])[metric].reset_index()
    ax = ax or plt.subplots(figsize=(max(4.0, 0.9 * len(stats)), 3))[1]
    xs = list(dict.fromkeys(stats[x]))
    hues = list(dict.fromkeys(stats[hue])) if hue else [None]
    width = 0.8 / len(hues)
    for j, h in enumerate(hues):
        part = stats if h is None else stats[stats[hue] == h]
        pos = [xs.index(v) + (j - (len(hues) - 1) / 2) * width for v in part[x]]
        ax.bar(pos, part["mean"], width=width, yerr=part["std"], capsize=3, label=None if h is None else str(h))
    ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=20, ha="right")
    ax.set_ylabel(f"{metric} (mean ± sd over seeds)")
    if hue:
        ax.legend(fontsize=8, title=hue)
    if title:
        ax.set_title(title)
    return ax


def bar_with_range(frame: pd.DataFrame, x: str, metric: str, hue: str, ax: plt.Axes | None = None,
                   title: str | None = None) -> plt.Axes:
    """Bars of the median `metric` of each row, with error bars from its `<metric>_min` to `<metric>_max` columns
    (repeated timings: the spread says how far the figure can be trusted), grouped by `x` and `hue`."""
    missing = [c for c in (x, hue, metric, f"{metric}_min", f"{metric}_max") if c not in frame.columns]
    if missing:
        raise ConfigError(f"results lack columns {missing}; columns are {list(frame.columns)}")
    ax = ax or plt.subplots(figsize=(max(4.0, 0.9 * frame[x].nunique() * frame[hue].nunique()), 3))[1]
    xs, hues = list(dict.fromkeys(frame[x])), list(dict.fromkeys(frame[hue]))
    width = 0.8 / len(hues)
    for j, h in enumerate(hues):
        part = frame[frame[hue] == h]
        pos = [xs.index(v) + (j - (len(hues) - 1) / 2) * width for v in part[x]]
        errors = [part[metric] - part[f"{metric}_min"], part[f"{metric}_max"] - part[metric]]
        ax.bar(pos, part[metric], width=width, yerr=errors, capsize=3, label=str(h))
    ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=20, ha="right")
    ax.set_ylabel(f"{metric} (median, min-max)")
    ax.legend(fontsize=8, title=hue)
    if title:
        ax.set_title(title)
    return ax


def styled_table(frame: pd.DataFrame, caption: str | None = None, precision: int = 3,
                 highlight_max: Sequence[str] = (), highlight_min: Sequence[str] = (), uuid: str | None = None,
                 wrap: bool = False):
    """A pandas Styler rendered to static HTML (deterministic ids): rounded numbers, best value per column in bold."""
    from IPython.display import HTML

    styler = frame.style.format(precision=precision, na_rep="–").hide(axis="index")
    props = "font-weight: bold; background-color: #e8f4ea"
    if highlight_max:
        styler = styler.highlight_max(subset=list(highlight_max), props=props)
    if highlight_min:
        styler = styler.highlight_min(subset=list(highlight_min), props=props)
    if caption:
        styler = styler.set_caption(html.escape(caption))
    styler = styler.set_uuid(uuid or slug(caption or "table")[:40]).set_table_attributes('class="polyp-table"')
    space = "normal" if wrap else "nowrap"  # numeric tables never wrap (they scroll); text tables (wrap=True) do
    styler = styler.set_table_styles([{"selector": "td, th", "props": f"white-space: {space}; padding: 2px 8px;"}])
    wrap = '<div class="polyp-table-wrap" style="overflow-x: auto; max-width: 100%">'  # wide tables scroll
    return HTML(f"{wrap}{styler.to_html()}</div>")


def slug(text: str) -> str:
    """The letters and digits of `text`, other characters as `-` (ids, folder names)."""
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-") or "table"


def mean_sd_table(frame: pd.DataFrame, by: str | Sequence[str], metrics: Sequence[str], precision: int = 3) -> pd.DataFrame:
    """`mean ± sd (n)` strings per group and metric, for tables of results over seeds."""
    stats = seed_summary(frame, by, metrics)
    out = pd.DataFrame(index=stats.index)
    for m in metrics:
        mean, sd = stats[(m, "mean")], stats[(m, "std")]
        count = stats[(m, "count")]
        out[m] = [f"{a:.{precision}f} ± {b:.{precision}f}" if n > 1 else f"{a:.{precision}f} ± –"  # sd of one seed: none
                  for a, b, n in zip(mean, sd, count)]
    out["seeds"] = stats[(metrics[0], "count")].astype(int)
    return out.reset_index()


def distribution(frame: pd.DataFrame, column: str, by: str, title: str | None = None, bins: int = 20) -> Figure:
    """Histograms of `column` per group `by` (e.g. polyp area fraction per dataset or centre), shared bins."""
    if column not in frame or by not in frame:
        raise ConfigError(f"table lacks {column!r} or {by!r}; columns are {list(frame.columns)}")
    fig, ax = plt.subplots(figsize=(5, 3))
    edges = np.histogram_bin_edges(frame[column].to_numpy(dtype=float), bins=bins)
    for name, part in frame.groupby(by, sort=False):
        ax.hist(part[column], bins=edges, alpha=0.55, label=f"{name} (n={len(part)})", density=True)
    ax.set_xlabel(column)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
