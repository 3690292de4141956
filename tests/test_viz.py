"""Shared book figures and tables: what they draw, aggregate and reject."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from polyplib import viz
from polyplib.errors import ConfigError


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _disc(size: int = 32, r: int = 8, cx: int = 16, cy: int = 12) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (((xx - cx) ** 2 + (yy - cy) ** 2) <= r * r).float()[None]


def test_to_numpy_image_moves_channels_last_and_squeezes_masks():
    image = torch.rand(3, 20, 30)
    out = viz.to_numpy_image(image)
    assert out.shape == (20, 30, 3)
    assert np.allclose(out[..., 1], image[1].numpy())
    assert viz.to_numpy_image(torch.zeros(1, 20, 30)).shape == (20, 30)
    with pytest.raises(ConfigError, match="shape"):
        viz.to_numpy_image(np.zeros((2, 3, 4, 5)))


def test_overlay_draws_gt_and_prediction_outlines_and_box():
    image, mask = torch.rand(3, 32, 32), _disc()
    pred = _disc(cx=20)
    ax = viz.overlay(image, mask, pred, box=[8, 4, 25, 21])
    contour_colours = [tuple(np.round(c.get_edgecolor()[0][:3], 3)) for c in ax.collections]
    assert len(contour_colours) == 2
    assert contour_colours[0] == tuple(np.round(matplotlib.colors.to_rgb(viz.GT_COLOUR), 3))
    assert contour_colours[1] == tuple(np.round(matplotlib.colors.to_rgb(viz.PRED_COLOUR), 3))
    (rect,) = ax.patches
    assert rect.get_width() == 17 and rect.get_height() == 17 and rect.get_xy() == (7.5, 3.5)
    # an empty prediction draws no outline instead of failing
    ax2 = viz.overlay(image, mask, torch.zeros(1, 32, 32))
    assert len(ax2.collections) == 1


def test_example_grid_one_panel_per_sample_and_titles_from_ids():
    samples = [{"image": torch.rand(3, 16, 16), "mask": _disc(16, 4, 8, 8), "id": f"s{i}"} for i in range(5)]
    fig = viz.example_grid(samples, ncols=3, title="centre A")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 6 and len(visible) == 5
    assert [ax.get_title() for ax in visible] == ["s0", "s1", "s2", "s3", "s4"]
    with pytest.raises(ConfigError, match="empty"):
        viz.example_grid([])
    with pytest.raises(ConfigError, match="2 predictions for 5 samples"):
        viz.example_grid(samples, preds=[None, None])


def test_prediction_rows_layout():
    imgs = [torch.rand(3, 16, 16) for _ in range(2)]
    masks = [_disc(16, 4, 8, 8) for _ in range(2)]
    fig = viz.prediction_rows(imgs, masks, {"gmsrf": [m * 0.9 for m in masks], "unet": [m * 0.2 for m in masks]})
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["image + GT", "gmsrf", "unet"]


def test_curves_groups_losses_and_metrics():
    hist = [{"epoch": e, "train_loss": 1 / (e + 1), "val_loss": 1.2 / (e + 1), "val_dice": 0.1 * e} for e in range(4)]
    fig = viz.curves(hist)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "metrics"]
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 1
    assert np.allclose(fig.axes[1].lines[0].get_ydata(), [0.0, 0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match="no column 'step'"):
        viz.curves(hist, x="step")
    with pytest.raises(ConfigError, match="lacks columns"):
        viz.curves(hist, groups={"x": ["nope"]})


def test_curves_by_group_plot_the_mean_over_seeds_with_its_sd():
    hist = [{"model": m, "seed": s, "epoch": e, "train_loss": base + s + e}
            for m, base in (("a", 0.0), ("b", 10.0)) for s in (0, 2) for e in (1, 2)]
    fig = viz.curves(hist, groups={"train loss": ["train_loss"]}, by="model")
    lines = fig.axes[0].lines
    assert [line.get_label() for line in lines] == ["a", "b"] and fig.axes[0].get_title() == "train loss"
    assert np.allclose(lines[0].get_ydata(), [2.0, 3.0]) and np.allclose(lines[1].get_ydata(), [12.0, 13.0])
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(band.min(), 2.0 - np.sqrt(2)) and np.isclose(band.max(), 3.0 + np.sqrt(2))
    with pytest.raises(ConfigError, match="no column 'centre'"):
        viz.curves(hist, by="centre")


def test_feature_and_attention_maps():
    fig = viz.feature_maps(torch.rand(1, 12, 8, 8), n=5)
    assert sum(ax.get_visible() for ax in fig.axes) == 5
    maps = {"scale 1": torch.rand(1, 1, 16, 16) + 1, "scale 2": torch.rand(8, 8) + 1}
    fig = viz.attention_maps(maps, image=torch.rand(3, 16, 16), title="CMSA")
    assert fig._suptitle.get_text() == "CMSA"
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["input", "scale 1 16x16", "scale 2 8x8"]
    lo, hi = fig.axes[1].images[0].get_clim()
    all_vals = torch.cat([maps["scale 1"].flatten(), maps["scale 2"].flatten()])
    assert lo == pytest.approx(all_vals.min().item()) and hi == pytest.approx(all_vals.max().item())
    with pytest.raises(ConfigError, match="must be \\[H, W\\]"):
        viz.attention_maps({"bad": torch.rand(2, 3, 4)})


def _seed_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "model": ["gmsrf"] * 3 + ["unet"] * 3,
        "seed": [0, 1, 2] * 2,
        "dice": [0.8, 0.7, 0.9, 0.5, 0.5, 0.8],
    })


def test_seed_summary_mean_std_count():
    out = viz.seed_summary(_seed_frame(), "model", ["dice"])
    assert out.loc["gmsrf", ("dice", "mean")] == pytest.approx(0.8)
    assert out.loc["gmsrf", ("dice", "std")] == pytest.approx(0.1)
    assert out.loc["unet", ("dice", "std")] == pytest.approx(np.std([0.5, 0.5, 0.8], ddof=1))
    assert out.loc["unet", ("dice", "count")] == 3
    single = viz.seed_summary(_seed_frame().iloc[:1], "model", ["dice"])
    assert single.loc["gmsrf", ("dice", "std")] == 0.0
    with pytest.raises(ConfigError, match="lack columns \\['iou'\\]"):
        viz.seed_summary(_seed_frame(), "model", ["iou"])


def test_bar_with_errors_heights_and_error_bars():
    ax = viz.bar_with_errors(_seed_frame(), "model", "dice")
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.8, 0.6])
    bars = next(c for c in ax.containers if hasattr(c, "errorbar"))
    (errorbar,) = bars.errorbar.lines[2]
    segments = errorbar.get_segments()
    assert segments[0][1][1] - segments[0][0][1] == pytest.approx(2 * 0.1)
    frame = pd.concat([_seed_frame().assign(test="A"), _seed_frame().assign(test="B", dice=lambda d: d.dice / 2)])
    ax = viz.bar_with_errors(frame, "test", "dice", hue="model")
    assert sorted(round(p.get_height(), 4) for p in ax.patches) == [0.3, 0.4, 0.6, 0.8]


def test_styled_table_is_deterministic_html_with_highlight():
    frame = pd.DataFrame({"model": ["a", "b"], "dice": [0.81234, 0.9], "mae": [0.1, 0.05]})
    first = viz.styled_table(frame, caption="Table I (smoke)", highlight_max=["dice"], highlight_min=["mae"]).data
    second = viz.styled_table(frame, caption="Table I (smoke)", highlight_max=["dice"], highlight_min=["mae"]).data
    assert first == second
    assert "0.812" in first and "0.81234" not in first
    assert "Table I (smoke)" in first and "font-weight: bold" in first
    assert repr(viz.styled_table(frame)).startswith("<IPython.core.display.HTML")


def test_distribution_one_histogram_per_group():
    frame = pd.DataFrame({"area": np.r_[np.full(10, 0.1), np.full(5, 0.4)], "centre": ["A"] * 10 + ["B"] * 5})
    fig = viz.distribution(frame, "area", "centre")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["A (n=10)", "B (n=5)"]
    with pytest.raises(ConfigError, match="lacks 'size'"):
        viz.distribution(frame, "size", "centre")


def test_mean_sd_table_shows_no_sd_for_a_single_seed():
    frame = pd.DataFrame({"model": ["a", "a", "b"], "seed": [0, 1, 0], "dice": [0.5, 0.7, 0.9]})
    table = viz.mean_sd_table(frame, "model", ["dice"]).set_index("model")
    assert table.loc["a", "dice"] == "0.600 ± 0.141" and table.loc["a", "seeds"] == 2
    assert table.loc["b", "dice"] == "0.900 ± –" and table.loc["b", "seeds"] == 1
