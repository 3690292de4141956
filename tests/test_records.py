"""Stored results read as typed records: every committed file loads, keeps its run id and gives back its JSON; older
shapes load through the compatibility rules; a malformed file is named in one line; prompts are types."""
import json
import shutil
from pathlib import Path

import pytest

from polyplib.campaigns import RunResult, Store, campaigns
from polyplib.campaigns.box_prompts import BoxFill, CascadeBox, GTBox, box_prompt
from polyplib.campaigns.records import FailureRecord
from polyplib.errors import DataError

REPO = Path(__file__).resolve().parents[1]
STORED = [p for p in sorted((REPO / "results").glob("*/*/*.json")) if p.parent.name not in ("bench", "figures")]
SAM_RUN = "14de8b687a9b"  # lite Polyp-SAM decoder-only seed 2: its cascade entries record their detector


def test_every_committed_result_loads_keeps_its_run_id_and_gives_back_its_json():
    assert len(STORED) >= 27
    for path in STORED:
        record = Store(REPO / "results", path.parents[1].name, path.parent.name).load(path.stem)
        assert isinstance(record, RunResult), path
        assert record.spec.run_id == record.run_id == path.stem, path
        assert record.to_dict() == json.loads(path.read_text()), path
        assert [box_prompt(p).to_dict() for p in record.spec.prompts] == list(record.spec.prompts), path


def test_a_committed_failure_record_loads_and_gives_back_its_json():
    (path,) = sorted((REPO / "results").glob("*/*/failed/*.json"))
    data = json.loads(path.read_text())
    record = FailureRecord.from_dict(data, path)
    assert record.reason and record.spec.run_id == record.run_id == path.stem and record.to_dict() == data


@pytest.fixture
def sam_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "lite" / "polyp-sam"
    folder.mkdir(parents=True)
    shutil.copy(REPO / "results" / "lite" / "polyp-sam" / f"{SAM_RUN}.json", folder)
    return folder


def rewrite(path: Path, change) -> dict:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return data


def test_an_older_result_loads_through_the_compatibility_rules(sam_folder):
    def older(data: dict) -> None:
        for entry in data["tests"]:
            entry.pop("detector", None)  # before the detector's training was recorded
            entry["per_image"] = {k: v for k, v in entry["per_image"].items() if k in ("id", "dice", "iou")}
        for key in ("images_per_s", "eval_s", "torch_threads"):
            del data["provenance"][key]

    data = rewrite(sam_folder / f"{SAM_RUN}.json", older)
    record = Store(sam_folder.parents[1], "lite", "polyp-sam").load(SAM_RUN)
    cascade = record.entry("cvc-colondb", "cascade")
    assert cascade.detector is None and set(cascade.per_image) == {"id", "dice", "iou"}
    assert record.checksum is None and record.tests_at_epoch == () and record.provenance.images_per_s is None
    assert record.provenance.train_s == data["provenance"]["train_s"]
    assert record.to_dict() == data and record.labels["strategy"] == "decoder"


def test_a_relabelled_result_keeps_its_run_id():
    path = REPO / "results" / "lite" / "polyp-sam" / f"{SAM_RUN}.json"
    record = Store(REPO / "results", "lite", "polyp-sam").load(SAM_RUN)
    renamed = record.relabelled(model="reference")
    assert renamed.labels["model"] == "reference" and renamed.spec.run_id == SAM_RUN
    assert record.labels["model"] == "polyp-sam-tiny" and record.to_dict() == json.loads(path.read_text())


@pytest.mark.parametrize("change, field", [
    (lambda d: d["train"].pop("best_epoch"), "'best_epoch'"),
    (lambda d: d["tests"][0].pop("protocol"), "'protocol'"),
    (lambda d: d["tests"][2].update(detector={"run_id": "x"}), "wrong shape"),
])
def test_a_malformed_result_is_named_in_one_line(sam_folder, change, field):
    path = sam_folder / f"{SAM_RUN}.json"
    rewrite(path, change)
    with pytest.raises(DataError) as err:
        Store(sam_folder.parents[1], "lite", "polyp-sam").load(SAM_RUN)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and field in message


def test_prompts_are_types_that_give_back_the_json_they_were_read_from():
    spec = campaigns("lite")["polyp-sam"].runs[0]
    prompts = [box_prompt(p) for p in spec.prompts]
    assert [type(p) for p in prompts] == [GTBox] * 4 + [CascadeBox, BoxFill]
    assert [p.jitter for p in prompts[:4]] == [0.0, 0.05, 0.1, 0.2]
    cascade = prompts[4]
    assert cascade.run.run_id == spec.detectors()[0].run_id and cascade.record is None
    assert cascade.trained(object(), {"run_id": "r"}).to_dict() == cascade.to_dict()  # the model is not stored
    assert [p.to_dict() for p in prompts] == list(spec.prompts)
