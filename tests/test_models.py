"""Model registry, output shapes (meta device at full size, real compute at tiny size), gradients, weights, errors."""
import subprocess
import sys

import pytest
import timm
import torch

from polyplib import plugins
from polyplib.errors import ConfigError, WeightsError
from polyplib.losses import build_loss
from polyplib.models import create_model, describe, list_models, register_model
from polyplib.models import registry
from polyplib.models.cmsa import CMSA
from polyplib.models.msfs import MSFS

VARIANTS = [("gmsrf", {"variant": "official"}), ("gmsrf", {"variant": "paper"}), ("unet", {}), ("unetplusplus", {}),
            ("deeplabv3plus", {}), ("unet-original", {})]
IDS = ["gmsrf-official", "gmsrf-paper", "unet", "unetplusplus", "deeplabv3plus", "unet-original"]


def test_list_models_has_every_baseline_and_gmsrf():
    assert {"gmsrf", "unet", "unetplusplus", "deeplabv3plus", "unet-original"} <= set(list_models())


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
@pytest.mark.parametrize("hw", [(256, 256), (320, 288)])
def test_output_shapes_at_full_size(name, options, hw):
    """Shapes on the meta device (no compute): eval -> one map, train -> deep-supervision tuple for GMSRF."""
    with torch.device("meta"):
        model = create_model(name, **options)
    image = torch.empty(2, 3, *hw, device="meta")
    assert model.eval()(image).shape == (2, 1, *hw)
    outs = model.train()(image)
    outs = outs if isinstance(outs, tuple) else (outs,)
    assert [o.shape for o in outs] == [(2, 1, *hw)] * (4 if name == "gmsrf" else 1)


@pytest.mark.parametrize("name,options,size", [
    ("gmsrf", {"variant": "official"}, 16), ("gmsrf", {"variant": "paper"}, 64), ("unet", {}, 32),
    ("unetplusplus", {}, 32), ("deeplabv3plus", {}, 32), ("unet-original", {}, 16)], ids=IDS)
def test_gradients_reach_every_parameter(name, options, size):
    torch.manual_seed(0)
    model = create_model(name, **options).train()
    image = torch.rand(2, 3, size, size)
    mask = (torch.rand(2, 1, size, size) > 0.5).float()
    outs = model(image)
    loss = build_loss("structure")(outs, mask)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    zero = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0]
    assert not zero, zero


def test_eval_and_ablation_outputs():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 16, 16)
    model = create_model("gmsrf", variant="official", deep_supervision=False)
    with torch.no_grad():
        train_out, eval_out = model.train()(image), model.eval()(image)
    assert train_out.shape == eval_out.shape == (2, 1, 16, 16)  # a tensor, not a tuple, even in training
    assert torch.isfinite(eval_out).all() and not torch.allclose(train_out, eval_out)  # BN batch vs running stats
    with torch.device("meta"):
        bare = create_model("gmsrf", variant="official", num_modules=0)
        no_cmsa = create_model("gmsrf", variant="official", cmsa=False)
        no_msfs = create_model("gmsrf", variant="official", msfs=False)
    assert len(bare.gmsrf) == 0 and bare.train()(image.to("meta"))[0].shape == (2, 1, 16, 16)
    assert all(layer.cmsa is None for module in no_cmsa.gmsrf for scales in module.layers for layer in scales)
    assert all(isinstance(layer.msfs, torch.nn.Identity) for scales in no_msfs.gmsrf[1].layers for layer in scales)


def test_cmsa_map_is_one_channel_in_1_2_and_msfs_scales_channels():
    torch.manual_seed(0)
    maps = [torch.randn(2, 32, 8, 8) * 10 for _ in range(3)]
    att = CMSA(96)(maps)
    assert att.shape == (2, 1, 8, 8) and att.min() >= 1 and att.max() <= 2 and att.std() > 0
    x = torch.randn(2, 16, 4, 4)
    y = MSFS(16)(x)
    ratio = y / x
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-5)  # one gate per channel
    assert ratio.min() > 0 and ratio.max() < 1


def test_official_normalisation_is_identity_paper_is_imagenet():
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(create_model("gmsrf", variant="official").norm(x), x)
    paper = create_model("gmsrf", variant="paper").norm(x)
    assert torch.allclose(paper[0, 0], (x[0, 0] - 0.485) / 0.229)


def test_unknown_names_and_options_raise_config_error():
    with pytest.raises(ConfigError, match="unet-original"):
        create_model("resunet")
    with pytest.raises(ConfigError, match="deep_supervision"):
        create_model("gmsrf", dropout=0.1)
    with pytest.raises(ConfigError, match="official"):
        create_model("gmsrf", variant="v2")
    with pytest.raises(ConfigError, match="timm"):
        create_model("gmsrf", backbone="resnet-fifty")
    with pytest.raises(ConfigError, match="encoder_name"):
        create_model("unet", encoder_name="no-such-encoder")
    with pytest.raises(ConfigError, match="num_modules"):
        create_model("gmsrf", num_modules=-1)


@pytest.mark.parametrize("shape", [(1, 3, 36, 32), (1, 1, 32, 32), (3, 32, 32)])
def test_bad_input_shapes_raise_config_error(shape):
    model = create_model("gmsrf", variant="official", num_modules=0).eval()
    with pytest.raises(ConfigError, match="GMSRF-Net"):
        model(torch.rand(*shape))
    with pytest.raises(ConfigError, match="unet"):
        create_model("unet").eval()(torch.rand(1, 3, 48, 64))


def test_register_model_from_another_module_and_lazy_plugin(tmp_path, monkeypatch):
    @register_model("tiny-test-net")
    def tiny(width: int = 2) -> torch.nn.Module:
        return torch.nn.Conv2d(3, width, 1)

    try:
        assert "tiny-test-net" in list_models() and create_model("tiny-test-net", width=5).out_channels == 5
        with pytest.raises(ConfigError, match="already registered"):
            register_model("tiny-test-net")(lambda: None)
    finally:
        registry._REGISTRY.pop("tiny-test-net")
    plugin = tmp_path / "polyp_plugin_for_test.py"
    plugin.write_text("import torch\nfrom polyplib.models import register_model\n\n"
                      "@register_model('plugin-net')\ndef plugin_net():\n    return torch.nn.Identity()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "PLUGINS", ("polyp_plugin_for_test", "polyplib_missing_plugin"))
    try:
        assert "plugin-net" not in registry._REGISTRY and "polyp_plugin_for_test" not in sys.modules
        assert isinstance(create_model("plugin-net"), torch.nn.Identity)  # imported on first unknown name
    finally:
        registry._REGISTRY.pop("plugin-net", None)
        sys.modules.pop("polyp_plugin_for_test", None)


def test_describe_counts_flops_by_hand_and_leaves_model_untouched():
    # unet-original, 4 base channels, depth 1, 16x16: FLOPs = 2 * multiply-adds of each conv (biases not counted)
    hw, low = 16 * 16, 8 * 8
    mac = (3 * 4 * 9 + 4 * 4 * 9) * hw + (4 * 8 * 9 + 8 * 8 * 9) * low + 8 * 4 * 4 * low \
        + (8 * 4 * 9 + 4 * 4 * 9) * hw + 4 * 1 * hw
    info = describe("unet-original", image_size=16, base_channels=4, depth=1)
    assert info["gflops"] == pytest.approx(2 * mac / 1e9, rel=1e-9)
    assert info["output_shape"] == (1, 1, 16, 16) and info["output_shapes"] == [(2, 1, 16, 16)]
    model = create_model("gmsrf", variant="official", num_modules=1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    info = describe(model, image_size=64)
    assert info["output_shapes"] == [(2, 1, 64, 64)] * 4 and info["params"] == info["trainable_params"] > 4e7
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert next(model.parameters()).device.type == "cpu"
    with pytest.raises(ConfigError, match="options only"):
        describe(model, variant="paper")


@pytest.mark.parametrize("variant,timm_name,prefix", [("official", "res2net50d", "encoder.stages.0."),
                                                       ("paper", "resnet50", "encoder.backbone.layer1.")])
def test_pretrained_file_loads_timm_state_dict(tmp_path, variant, timm_name, prefix):
    torch.manual_seed(1)
    source = timm.create_model(timm_name)
    path = tmp_path / f"{timm_name}.pth"
    torch.save(source.state_dict(), path)
    model = create_model("gmsrf", variant=variant, pretrained_file=path)
    loaded = {k[len(prefix):]: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    expected = {k[len("layer1."):]: v for k, v in source.state_dict().items() if k.startswith("layer1.")}
    assert loaded.keys() == expected.keys() and all(torch.equal(loaded[k], expected[k]) for k in expected)
    fresh = create_model("gmsrf", variant=variant).state_dict()
    assert not torch.equal(fresh[prefix + "0.conv1.weight"], expected["0.conv1.weight"])


def test_missing_or_corrupt_weights_raise_weights_error(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="does not exist"):
        create_model("gmsrf", pretrained_file=tmp_path / "absent.pth")
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(WeightsError, match="pretrained_file"):
        create_model("gmsrf", variant="paper", pretrained_file=bad)
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # the hub is unreachable
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsError, match="pretrained=False"):
        create_model("gmsrf", variant="official", pretrained=True)


def test_create_architecture_reads_no_pretrained_weights(tmp_path):
    from polyplib.models import create_architecture
    absent = tmp_path / "absent.pth"
    with pytest.raises(WeightsError, match="does not exist"):
        create_model("gmsrf", pretrained_file=absent)
    model = create_architecture("gmsrf", pretrained=True, pretrained_file=absent)  # a checkpoint is loaded next
    assert model.state_dict().keys() == create_model("gmsrf").state_dict().keys()


def test_importing_the_models_leaves_smp_until_a_baseline_is_built():
    code = ("import sys, polyplib.models as m; assert 'segmentation_models_pytorch' not in sys.modules; "
            "m.create_model('unet'); assert 'segmentation_models_pytorch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
