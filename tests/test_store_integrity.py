"""Issue 23 S5: a stored result must agree with itself (run id = hash of its spec, checksum, every declared test,
means = means of its per-image scores), else it is named in one line and treated as missing."""
import json
import re
import shutil
from pathlib import Path

import pytest

from polyplib import cli
from polyplib.campaigns import Context, Store, campaigns, execute
from polyplib.campaigns.integrity import inconsistency
from polyplib.campaigns.runner import status
from polyplib.campaigns.store import StoreWarning, read_result

REPO = Path(__file__).resolve().parents[1]
RUN = "595837494b2e"  # lite cross-dataset GMSRF-Net seed 0 (kvasir-seg test split, cvc-colondb)
STORED = [p for p in sorted((REPO / "results").glob("*/*/*.json")) if p.parent.name not in ("bench", "figures")]


def test_every_committed_result_agrees_with_itself():
    assert len(STORED) >= 20
    for path in STORED:
        assert inconsistency(read_result(path, path.stem)) is None, path


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The results folder with one real stored run (and its seed-1 partner) copied in."""
    folder = tmp_path / "results" / "lite" / "cross-dataset"
    folder.mkdir(parents=True)
    for path in (REPO / "results" / "lite" / "cross-dataset").glob("*.json"):
        if json.loads(path.read_text())["spec"]["labels"]["model"] == "GMSRF-Net":
            shutil.copy(path, folder)
    return folder


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def set_seed(data: dict) -> None:
    data["spec"]["config"]["seed"] = 7


EDITS = {
    "mean": (lambda d: d["tests"][0]["means"].update(dice=0.99), "has mean dice 0.99 but its per-image scores average"),
    "per-image": (lambda d: d["tests"][1]["per_image"]["dice"].__setitem__(0, 1.0), "per-image scores average"),
    "seed": (set_seed, "hashes to run id"),
    "missing test": (lambda d: d["tests"].pop(1), "lacks test 'cvc-colondb' of its spec"),
    "text metric": (lambda d: d["tests"][0]["means"].update(Sm="high"), "a mean Sm that is not a number ('high')"),
    "n": (lambda d: d["tests"][0].update(n=99), "has n 99 but 100 per-image ids"),
}


@pytest.mark.parametrize("kind", list(EDITS))
def test_an_edited_result_is_named_in_one_line_and_treated_as_missing(copy, kind):
    change, needle = EDITS[kind]
    store = Store(copy.parents[1], "lite", "cross-dataset")
    spec = next(s for s in campaigns("lite")["cross-dataset"].runs if any(f.run_id == RUN for f in s.equivalents()))
    ctx = Context(results=str(copy.parents[1]), root=str(copy / "no-data"), device="cpu")
    assert status(spec, store, ctx)[0] == "done"
    edit(copy / f"{RUN}.json", change)
    line = rf"result file .*{RUN}.json is inconsistent: .*{re.escape(needle)}.*treated as missing"
    with pytest.warns(StoreWarning, match=line):
        assert store.load(RUN) is None
    with pytest.warns(StoreWarning):
        state, detail, _ = status(spec, store, ctx)
    assert state == "unavailable" and "is inconsistent: delete it to train the run again" in detail
    with pytest.warns(StoreWarning):
        assert RUN not in {r.run_id for r in store.results()}


def test_collect_leaves_an_inconsistent_result_out(capsys, copy):
    results = copy.parents[1]
    assert cli.main(["campaign", "collect", "lite", "cross-dataset", "--results", str(results)]) == 0
    table = capsys.readouterr().out
    edit(copy / f"{RUN}.json", EDITS["text metric"][0])  # pandas' "agg function failed" before
    with pytest.warns(StoreWarning, match="not a number"):
        assert cli.main(["campaign", "collect", "lite", "cross-dataset", "--results", str(results)]) == 0
    edited = capsys.readouterr().out
    assert "0.99" not in edited and edited != table
    rows = [line.split() for line in edited.splitlines()[1:]]
    assert {row[-1] for row in rows if row[0] == "GMSRF-Net" and row[2] == "kvasir-seg"} == {"2"}  # 3 seeds, 1 out


def test_run_never_writes_over_an_inconsistent_result(copy):
    from test_campaigns import tiny_spec

    spec = tiny_spec(epochs=1)
    store = Store(copy.parents[2] / "tiny-results", "test", "tiny")
    store.folder.mkdir(parents=True)
    edited = store.path(spec.resolved("cpu").run_id)
    edited.write_text((copy / f"{RUN}.json").read_text().replace(RUN, edited.stem))  # another run's spec: inconsistent
    before = edited.read_text()
    with pytest.warns(StoreWarning):
        outcome = execute(spec, store, work=copy.parents[2] / "work", device="cpu")
    assert outcome.status == "unavailable" and "inconsistent" in outcome.detail and edited.read_text() == before


def test_a_saved_result_carries_a_checksum_that_catches_any_edit(copy, tmp_path):
    data = json.loads((copy / f"{RUN}.json").read_text())
    store = Store(tmp_path / "fresh", "lite", "cross-dataset")
    store.save(data)
    assert store.load(RUN).checksum
    edit(store.path(RUN), lambda d: d["train"].update(best_epoch=3))
    with pytest.warns(StoreWarning, match="does not match its checksum"):
        assert store.load(RUN) is None


def test_report_card_scores_may_be_null_where_undefined_but_must_average_to_their_mean():
    from polyplib.campaigns.integrity import _entry_problem

    entry = {"key": "cvc-colondb", "prompt": "none", "n": 3, "means": {"dice": 0.5, "hd95": 3.0},
             "per_image": {"id": ["1", "2", "3"], "dice": [0.0, 0.75, 0.75], "hd95": [None, 2.0, 4.0],
                           "segment": [1, 1, 2]}}
    assert _entry_problem(entry) is None  # HD95 undefined on the empty prediction: left out of its mean
    entry["means"]["hd95"] = 2.0
    assert "mean hd95 2.0 but its per-image scores average 3.000000" in _entry_problem(entry)
    entry["means"]["hd95"], entry["per_image"]["hd95"][0] = 3.0, "n/a"
    assert "per-image hd95 scores that are not 3 numbers" in _entry_problem(entry)


def test_each_erratum_names_stored_runs_and_metrics_and_the_areas_it_keeps_agree_with_the_other_runs():
    """An erratum's runs and metrics exist; where it keeps the polyp areas, every image falls in the size class the
    campaign's other runs (scored at the original resolution) give it."""
    from polyplib.book.analysis import size_class

    for folder in sorted((REPO / "results").glob("*/*/errata")):
        profile, name = folder.parent.parent.name, folder.parent.name
        store = Store(REPO / "results", profile, name)
        results = {r.run_id: r for r in store.results()}
        for erratum in store.errata():
            assert set(erratum.runs) <= set(results) and erratum.why
            listed = {m for r in erratum.runs for e in results[r].tests for m in e.means}
            assert set(erratum.metrics) <= listed
            if "area" in erratum.metrics:
                continue
            for test in {e.key for r in results.values() for e in r.tests}:
                classes = {}
                for result in results.values():
                    entry = result.entry(test)
                    for image, area in zip(entry.per_image["id"], entry.per_image["area"]):
                        classes.setdefault(image, set()).add(size_class(area))
                assert all(len(c) == 1 for c in classes.values()), (name, test)
