"""The book's view of the `convergence` campaign: test points against epoch, validation curves, the plateau check."""
import numpy as np
import pytest

from polyplib.book.convergence import plateau_table, convergence_curves, point_scores, stopping_reading
from polyplib.campaigns import RESULT_FORMAT, Store, campaigns

TEST_BASE = {"kvasir-seg": 0.6, "cvc-colondb": 0.3}
BEST = {("GMSRF-Net", 0): 15, ("GMSRF-Net", 1): 20, ("U-Net", 0): 20, ("U-Net", 1): 19}


def val_dice(model: str, epoch: int) -> float:
    """GMSRF-Net rises 0.02 a epoch up to epoch 15 then stays; U-Net rises 0.01 a epoch to the end."""
    return 0.4 + (0.02 * min(epoch, 15) if model == "GMSRF-Net" else 0.01 * epoch)


def fake_dice(model: str, seed: int, test: str, epoch: int) -> float:
    return TEST_BASE[test] + 0.002 * epoch + 0.02 * seed + (0.1 if model == "U-Net" else 0.0)


def fake_result(spec) -> dict:
    model, seed = spec.labels["model"], spec.labels["seed"]
    best = BEST[(model, seed)]

    def entries(epoch: int, per_image: bool = False) -> list[dict]:
        """Test entries; the selected checkpoint's carry per-image scores (the store checks their means)."""
        out = []
        for key in TEST_BASE:
            dice = round(fake_dice(model, seed, key, epoch), 5)
            entry = {"key": key, "split": None, "protocol": "gmsrf", "prompt": "none", "n": 10, "means": {"dice": dice}}
            if per_image:
                entry["per_image"] = {"id": [f"{key}-{i}" for i in range(10)], "dice": [dice] * 10}
            out.append(entry)
        return out

    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_dice": val_dice(model, e + 1), "lr": 1e-4 * (20 - e) / 20}
               for e in range(20)]
    return {"format": RESULT_FORMAT, "run_id": spec.run_id, "profile": "lite", "campaign": "convergence",
            "spec": spec.to_dict(), "provenance": {},
            "train": {"best_epoch": best, "best_metric": val_dice(model, best), "select": "dice", "epochs": 20,
                      "history": history},
            "tests": entries(best, per_image=True), "tests_at_epoch": [{"epoch": e, "tests": entries(e)}
                                                       for e in spec.config["snapshot_epochs"]]}


@pytest.fixture
def results(tmp_path):
    """Seeds 0 and 1 of both models, stored and read back like the book reads them."""
    camp = campaigns("lite")["convergence"]
    store = Store(tmp_path, "lite", "convergence")
    specs = [s for s in camp.runs if s.labels["seed"] in (0, 1)]
    for spec in specs:
        store.save(fake_result(spec))
    return store.results_for(camp.runs)


def test_test_points_table_gives_mean_and_sd_over_seeds_at_every_point(results):
    frame = point_scores(results)
    assert len(frame) == 4 * 2 * 5  # runs x test sets x (4 test points + the selected checkpoint)
    table, fig = convergence_curves(results)
    colondb = table[(table["test"] == "cvc-colondb") & (table["model"] == "GMSRF-Net")]
    assert colondb["point"].tolist() == ["5", "10", "15", "20", "selected"]
    at_10 = colondb[colondb["point"] == "10"].iloc[0]
    assert at_10["mean"] == pytest.approx(0.3 + 0.02 + 0.01) and at_10["sd"] == pytest.approx(0.02 / np.sqrt(2))
    selected = colondb[colondb["point"] == "selected"].iloc[0]
    assert selected["epoch"] == 17.5 and selected["seeds"] == 2
    assert selected["mean"] == pytest.approx(np.mean([0.3 + 0.03, 0.3 + 0.04 + 0.02]))
    unet = table[(table["test"] == "kvasir-seg") & (table["model"] == "U-Net") & (table["point"] == "20")].iloc[0]
    assert unet["mean"] == pytest.approx(0.6 + 0.04 + 0.01 + 0.1)
    validation, kvasir, colondb_ax = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["validation (source val split)", "test: kvasir-seg",
                                                   "test: cvc-colondb"]
    means = [line for line in validation.lines if line.get_linewidth() == 2]  # one mean line per model
    assert [line.get_label() for line in means] == ["GMSRF-Net", "U-Net"]
    assert list(means[1].get_xdata()) == list(range(1, 21))
    assert means[1].get_ydata()[-1] == pytest.approx(val_dice("U-Net", 20))
    gmsrf = next(line for line in colondb_ax.lines if line.get_linewidth() == 2 and line.get_label() == "GMSRF-Net")
    assert list(gmsrf.get_xdata()) == [5, 10, 15, 20]
    assert gmsrf.get_ydata()[1] == pytest.approx(at_10["mean"])
    stars = colondb_ax.collections[0].get_offsets()  # GMSRF-Net's selected checkpoints at their epochs
    assert sorted(map(tuple, np.round(stars, 4))) == [(15.0, 0.33), (20.0, 0.36)]


def test_plateau_compares_the_last_five_epochs_with_the_best_before(results):
    table = plateau_table(results).set_index(["model", "seed"])
    gmsrf, unet = table.loc[("GMSRF-Net", 0)], table.loc[("U-Net", 1)]
    assert gmsrf["gain over last 5"] == pytest.approx(0.0) and bool(gmsrf["plateaued"])
    assert unet["gain over last 5"] == pytest.approx(0.05) and not unet["plateaued"]
    assert gmsrf["best val_dice"] == pytest.approx(0.7) and gmsrf["selected epoch"] == 15
    short = plateau_table(results, window=20)  # no epoch before the window: no gain, not plateaued
    assert short["gain over last 20"].isna().all() and not short["plateaued"].any()


def test_stopping_reading_counts_plateaus_and_reads_the_order_at_every_test_point(results):
    text = stopping_reading(results)
    assert "2 of 4 runs met the plateau check" in text  # GMSRF-Net flat after epoch 15, U-Net rising to the end
    assert "selected epochs are 15-20 of 20" in text
    assert "at most 2.5e-05" in text  # GMSRF-Net seed 0 stopped improving at epoch 15: 1e-4 x 5/20 after it
    assert text.count("U-Net ahead at every test point") == 2  # U-Net is 0.1 above on both sets at every point
    assert "epochs 5/10/15/20: -0.100, -0.100, -0.100, -0.100" in text


def test_stopping_reading_says_when_the_order_changes(tmp_path):
    camp = campaigns("lite")["convergence"]
    store = Store(tmp_path, "lite", "convergence")
    specs = [s for s in camp.runs if s.labels["seed"] == 0]
    for spec in specs:
        result = fake_result(spec)
        if spec.labels["model"] == "GMSRF-Net":  # overtakes U-Net on CVC-ColonDB at epoch 20
            point = next(p for p in result["tests_at_epoch"] if p["epoch"] == 20)
            point["tests"][1]["means"]["dice"] = 0.9
        store.save(result)
    text = stopping_reading(store.results_for(camp.runs))
    assert "cvc-colondb: the order changes between test points" in text
    assert "kvasir-seg: U-Net ahead at every test point" in text
    assert stopping_reading([]) == ""
