"""The `full` profile on the datasets a user has (--tests, the Kvasir-SEG-only Polyp-SAM variant, what each missing
dataset adds), and its pretrained weights: found where timm, smp and SAM keep them, verified, loaded."""
import pytest
import torch
from fullpath import make_root, sam_weights, smp_weights, timm_weights

from polyplib import cli
from polyplib.campaigns import campaigns, profile_settings
from polyplib.campaigns.present import configure, from_scratch, parse_tests
from polyplib.errors import ConfigError, WeightsError
from polyplib.models import create_architecture, create_model


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty, offline Hugging Face hub cache (where timm and smp look for ImageNet weights)."""
    import huggingface_hub.constants as constants

    folder = tmp_path / "hf" / "hub"
    folder.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return folder


def test_test_sets_are_a_setting_and_the_run_ids_name_them(tmp_path):
    full = profile_settings("full", data_root=str(make_root(tmp_path / "data", kvasir=1, colondb=1)))
    assert parse_tests(None, full) == parse_tests("all", full) == full.test_sets and len(full.test_sets) == 5
    present = configure(full, "present")
    assert present.test_sets == ("kvasir-seg", "cvc-colondb") == configure(full, "cvc-colondb,kvasir-seg").test_sets
    every, two = campaigns(full)["cross-dataset"].runs[0], campaigns(present)["cross-dataset"].runs[0]
    assert every.labels == two.labels and every.run_id != two.run_id
    assert [t["key"] for t in two.tests] == ["kvasir-seg", "cvc-colondb"]
    assert [t["split"] for t in two.tests] == ["test", None]
    # Kvasir-SEG alone: Polyp-SAM trains on its GMSRF training split (the cascade detector's), not on PraNet's set
    sam = campaigns(present)["polyp-sam"].runs[0]
    assert sam.config["dataset"] == "kvasir-seg" and sam.config["protocol"] == "gmsrf"
    assert sam.detectors()[0].run_id == two.run_id
    for bad in ("etis,nope", ""):
        with pytest.raises(ConfigError, match="--tests"):
            configure(full, bad)


def test_full_polyp_sam_trains_on_the_pranet_set_with_a_validation_split_and_tests_on_unseen_images():
    sam = campaigns("full")["polyp-sam"].runs[0]
    assert (sam.config["dataset"], sam.config["protocol"]) == ("pranet-train", "polyp-sam")
    splits = {t["key"]: (t["split"], t["protocol"]) for t in sam.tests}
    assert splits["kvasir-seg"] == ("test", "pranet") and splits["cvc-clinicdb"] == ("test", "pranet")
    assert splits["etis"] == (None, "pranet")


def test_lite_ids_do_not_move(shared_data):
    lite = profile_settings("lite", data_root=str(shared_data))
    ids = {n: c.run_ids() for n, c in campaigns(lite).items()}
    assert {n: c.run_ids() for n, c in campaigns(configure(lite, "present")).items()} == ids
    assert {n: c.run_ids() for n, c in campaigns(configure(lite, "all")).items()} == ids


@pytest.mark.slow  # the cost estimate runs one vit_b forward at 1024 px on the CPU (~1.5 min)
def test_plan_on_kvasir_and_colondb_lists_runnable_runs_and_what_each_missing_dataset_adds(tmp_path, capsys):
    root = make_root(tmp_path / "data", kvasir=10, colondb=380)  # every video segment: the 3 transfer folds exist
    args = ["campaign", "plan", "full", "--root", str(root), "--results", str(tmp_path / "r"), "--work",
            str(tmp_path / "w"), "--device", "cpu"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "64 runs: 0 done, 0 partial, 0 missing, 64 unavailable" in out
    assert "under the data root: kvasir-seg, cvc-colondb." in out
    assert "With --tests present (tested on kvasir-seg, cvc-colondb only" in out
    assert "52 runs: 0 done, 0 partial, 52 missing, 0 unavailable" in out
    assert "polyp-sam-b full kvasir-seg 0" in out and "Kvasir-SEG only (the paper: + CVC-ClinicDB)" in out
    assert "  cvc-clinicdb: a test set for every run; 12 cross-dataset run(s) trained on cvc-clinicdb" in out
    assert "  etis: a test set for every run\n" in out
    assert "  pranet-train: Polyp-SAM on the paper's training set" in out
    assert "? TFLOP" not in out.split("With --tests present")[1]  # estimates without fetching any weights
    assert cli.main([*args, "--tests", "present"]) == 0
    assert "52 missing, 12 unavailable" in capsys.readouterr().out
    assert cli.main([*args, "--tests", "kvasir"]) == 1
    assert "--tests kvasir: kvasir is not a test set of profile 'full'" in capsys.readouterr().err


def test_from_scratch_drops_every_pretrained_weight_and_says_so():
    scratch = from_scratch(profile_settings("full"))
    assert scratch.from_scratch and scratch.gmsrf_options["pretrained"] is False
    assert scratch.sam_options["allow_scratch"] and scratch.baseline_options["unet"]["encoder_weights"] is None
    full = campaigns("full")["cross-dataset"].runs[0]
    assert full.config["model_options"]["pretrained"] is True
    assert campaigns(scratch)["cross-dataset"].runs[0].run_id != full.run_id


def test_timm_imagenet_encoder_is_found_verified_and_loaded_from_the_hub_cache(hub):
    state = timm_weights(hub, "resnet50")
    model = create_model("gmsrf", variant="paper", pretrained=True)
    loaded = model.encoder.backbone.state_dict()
    torch.testing.assert_close(loaded["conv1.weight"], state["conv1.weight"], rtol=0, atol=0)
    torch.testing.assert_close(loaded["layer4.2.conv3.weight"], state["layer4.2.conv3.weight"], rtol=0, atol=0)
    assert not torch.equal(create_architecture("gmsrf", variant="paper", pretrained=True)
                           .encoder.backbone.state_dict()["conv1.weight"], state["conv1.weight"])
    blob = next((hub / "models--timm--resnet50.a1_in1k" / "blobs").glob("?" * 64))
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=rf"does not match its SHA-256 {blob.name}: .* delete .* --from-scratch"):
        create_model("gmsrf", variant="paper", pretrained=True)


def test_smp_imagenet_encoder_is_found_verified_and_loaded_from_the_hub_cache(hub, tmp_path):
    state = smp_weights(hub, "resnet34")
    net = create_model("unet", encoder_weights="imagenet").net
    torch.testing.assert_close(net.encoder.state_dict()["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"],
                               rtol=0, atol=0)
    with pytest.raises(WeightsError, match="smp's imagenet weights of resnet50 .* --from-scratch"):
        create_model("deeplabv3plus", encoder_weights="imagenet")  # not cached, offline: one line, what to do


def test_sam_checkpoint_with_a_wrong_md5_is_one_line_saying_what_to_do(tmp_path, monkeypatch):
    from polyplib.sam import checkpoints

    path, md5 = sam_weights(tmp_path / "w", "vit_b")
    assert path.name == "sam_vit_b_01ec64.pth"
    with pytest.raises(WeightsError) as info:  # random values cannot match Meta's published md5
        checkpoints.fetch_sam_checkpoint("vit_b", cache_dir=tmp_path / "w")
    assert "\n" not in str(info.value) and f"it has {md5}" in str(info.value)
    assert "delete it to download it again" in str(info.value) and path.is_file()  # the user's file is kept
    monkeypatch.setitem(checkpoints.SAM_CHECKPOINTS, "vit_b", (path.name, md5))  # a checksum the test computes
    model = create_model("polyp-sam-b", weights_dir=str(tmp_path / "w"))
    assert model.pretrained_source == path.name
    saved = torch.load(path, weights_only=True)
    torch.testing.assert_close(model.sam.state_dict()["mask_decoder.iou_token.weight"],
                               saved["mask_decoder.iou_token.weight"], rtol=0, atol=0)
