"""The official variant is the authors' network: Res2Net v1b shortcuts, their weights by name, their four outputs."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from polyplib.errors import ConfigError, WeightsError
from polyplib.models import authors_outputs, create_model, load_authors_state_dict
from polyplib.models.gmsrf_authors import authors_key

# (authors' key in NoviceMAn-prog/GMSRFNet model.py EncoderBlock, shape) read by hand from their __init__
AUTHORS_KEYS = {
    "conv1.conv.weight": (64, 3, 3, 3),
    "resnet.layer2.0.downsample.1.weight": (512, 256, 1, 1),
    "resnet.layer4.2.convs.2.weight": (208, 208, 3, 3),  # width floor(512 * 26 / 64)
    "conv_red.conv.weight": (32, 256, 1, 1),
    "rfb3_1.branch2.1.conv.weight": (128, 128, 1, 5),
    "rfb4_1.conv_cat.bn.running_var": (256,),
    "msrfv21.v1.conv.weight": (64, 128, 3, 3),
    "msrfv21.x1_w1.conv1.weight": (64, 32, 4, 4),  # upsample_8x: ConvTranspose2d(64 -> 32), weight [in, out, k, k]
    "msrfv21.x1_w1.conv3.weight": (32, 32, 4, 4),
    "msrfv23.w3_y3.conv2.weight": (32, 32, 4, 4),
    "msrfv23.att_v2.conv1.weight": (32, 96, 3, 3),
    "msrfv23.att_v2.conv2.weight": (1, 32, 1, 1),
    "msrfv21.y2_input.conv.weight": (64, 64 + 32 + 96, 1, 1),
    "msrfv21.w4_input.conv.weight": (544, 544, 1, 1),
    "msrfv21.w4_se.fc.0.weight": (68, 544),
    "msrfv23.v4.conv.weight": (128, 416, 3, 3),
    "u4.weight": (256, 128, 4, 4),
    "u1.bias": (32,),
    "level3_selection.weight": (128, 256, 3, 3),
    "final_2.bn.weight": (1,),
    "dsv8.weight": (1, 256, 1, 1),
    "dsv2.bias": (1,),
}
UNUSED = {"resnet.conv1.0.weight": (32, 3, 3, 3), "resnet.bn1.weight": (64,), "resnet.fc.weight": (1000, 2048),
          "en1.conv.weight": (32, 3, 3, 3), "msrfv22.x1.conv.weight": (32, 32, 3, 3),
          "msrfv21.x1_v1.bn1.weight": (32,)}


@pytest.fixture(scope="module")
def official():
    torch.manual_seed(0)
    return create_model("gmsrf", variant="official")


def authors_state(model: nn.Module, seed: int = 3) -> dict[str, torch.Tensor]:
    """A random state dict under the authors' names (every key the official network needs, plus unused members)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            value = torch.rand(tensor.shape, generator=gen) * 0.5 + (0.5 if "running_var" in key else -0.25)
        else:
            value = tensor.clone()
        state[authors_key(key)] = value
    state.update({k: torch.zeros(s) for k, s in UNUSED.items()})
    return state


def test_official_default_backbone_has_avg_pool_shortcuts():
    with torch.device("meta"):
        model = create_model("gmsrf", variant="official")
        strided = create_model("gmsrf", variant="official", backbone="res2net50_26w_4s")
    for stage, stride in zip(model.encoder.stages[1:], (2, 2, 2)):
        pool, conv, _ = stage[0].downsample
        assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == stride and pool.stride == stride
        assert pool.ceil_mode and not pool.count_include_pad
        assert conv.kernel_size == (1, 1) and conv.stride == (1, 1)
    conv = strided.encoder.stages[1][0].downsample[0]
    assert isinstance(conv, nn.Conv2d) and conv.stride == (2, 2)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in strided.parameters())


def test_create_model_default_is_the_paper_variant():
    with torch.device("meta"):
        assert create_model("gmsrf").stride == 32


def test_authors_names_and_shapes_written_by_hand_map_onto_the_official_network(official):
    ours = {authors_key(k): tuple(v.shape) for k, v in official.state_dict().items()}
    for key, shape in AUTHORS_KEYS.items():
        assert ours[key] == shape, key
    assert not set(UNUSED) & set(ours)


def test_authors_state_dict_loads_by_name_and_reports_unused_members(official, tmp_path):
    state = authors_state(official)
    path = tmp_path / "checkpoint.pth"
    torch.save({"module." + k: v for k, v in state.items()}, path)  # as saved from nn.DataParallel
    unused = load_authors_state_dict(official, path)
    assert unused == sorted(UNUSED)
    loaded = official.state_dict()
    assert torch.equal(loaded["encoder.stages.1.0.downsample.1.weight"], state["resnet.layer2.0.downsample.1.weight"])
    assert torch.equal(loaded["gmsrf.1.layers.2.3.msfs.fc.0.weight"], state["msrfv23.w4_se.fc.0.weight"])
    assert torch.equal(loaded["decoder.side.2.bias"], state["dsv8.bias"])
    del state["msrfv23.att_w3.conv2.weight"]
    with pytest.raises(WeightsError, match="att_w3.conv2"):
        load_authors_state_dict(official, state)
    with torch.device("meta"):
        narrow = create_model("gmsrf", variant="official", width=0.5)
    with pytest.raises(WeightsError, match="width=1"):
        load_authors_state_dict(narrow, authors_state(official))


def res2net_v1b_stage_block(x: torch.Tensor, s: dict[str, torch.Tensor], p: str, stride: int) -> torch.Tensor:
    """Res2Net v1b bottleneck, first block of a stage (Gao et al. 2019), from the authors' named weights."""
    def bn(t, name):
        return F.batch_norm(t, s[f"{name}.running_mean"], s[f"{name}.running_var"], s[f"{name}.weight"],
                            s[f"{name}.bias"], False, 0.0, 1e-5)

    out = F.relu(bn(F.conv2d(x, s[f"{p}.conv1.weight"]), f"{p}.bn1"))
    splits = out.chunk(4, dim=1)
    parts = [F.relu(bn(F.conv2d(splits[i], s[f"{p}.convs.{i}.weight"], stride=stride, padding=1), f"{p}.bns.{i}"))
             for i in range(3)]  # 'stage' blocks: no hierarchical sum
    parts.append(F.avg_pool2d(splits[3], 3, stride, 1))
    out = bn(F.conv2d(torch.cat(parts, 1), s[f"{p}.conv3.weight"]), f"{p}.bn3")
    short = F.avg_pool2d(x, stride, stride, ceil_mode=True, count_include_pad=False)
    return F.relu(out + bn(F.conv2d(short, s[f"{p}.downsample.1.weight"]), f"{p}.downsample.2"))


def test_loaded_shortcut_computes_res2net_v1b_and_differs_from_strided_1x1(official):
    state = authors_state(official, seed=5)
    load_authors_state_dict(official, state)
    x = torch.rand(1, 256, 15, 15)  # odd size: ceil_mode and count_include_pad=False matter at the border
    expected = res2net_v1b_stage_block(x, state, "resnet.layer2.0", 2)
    with torch.no_grad():
        got = official.eval().encoder.stages[1][0](x)
        block = create_model("gmsrf", variant="official", backbone="res2net50_26w_4s").eval().encoder.stages[1][0]
        same = {k.replace("downsample.1.", "downsample.0.").replace("downsample.2.", "downsample.1."): v
                for k, v in official.encoder.stages[1][0].state_dict().items()}  # the same weights, strided 1x1
        block.load_state_dict(same)
        other = block(x)
    assert got.shape == (1, 512, 8, 8)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert (other - expected).abs().max() > 1e-2


def test_authors_outputs_are_sigmoid_main_and_nearest_side_logits(official):
    load_authors_state_dict(official, authors_state(official, seed=7))
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        d1, d2, d3, d4 = authors_outputs(official.eval(), image)
        logits = official(image)
    assert all(o.shape == (1, 1, 64, 64) for o in (d1, d2, d3, d4)) and logits.shape == (1, 1, 64, 64)
    torch.testing.assert_close(d1, torch.sigmoid(logits))  # their D1 is our eval output through a sigmoid
    blocks = d4[0, 0].unfold(0, 8, 8).unfold(1, 8, 8)  # D4 from H/8, nn.Upsample(8) nearest: constant 8x8 blocks
    assert torch.equal(blocks, blocks[..., :1, :1].expand_as(blocks))
    assert d4.std() > 0 and d2[0, 0, 0, 0] == d2[0, 0, 1, 1] and not torch.equal(d2, d3)


def test_fusion_paper_follows_eq2_eq3_and_linear_gate_follows_eq1():
    from polyplib.models.gmsrf_module import FusionLayer

    torch.manual_seed(0)
    layer = FusionLayer(64 + 32 + 96, 64, 32, 32, cmsa=True, msfs=True, fusion="paper").eval()
    assert layer.fuse is None and layer.conv[0].in_channels == 192 and layer.conv[0].kernel_size == (3, 3)
    dense = [torch.randn(2, 64, 8, 8), torch.randn(2, 32, 8, 8)]
    resampled = [torch.randn(2, 32, 8, 8) for _ in range(3)]
    x = layer.conv(torch.cat(dense + resampled, 1))  # Eq. 2
    gated = x * (torch.sigmoid(layer.cmsa.conv1(layer.cmsa.conv3(torch.cat(resampled, 1)))) + 1)  # Eq. 3
    expected = gated * torch.sigmoid(layer.msfs.fc(gated.mean((2, 3))))[:, :, None, None]  # MSFS
    torch.testing.assert_close(layer(dense, resampled), expected)
    code = FusionLayer(192, 64, 32, 32, cmsa=True, msfs=True).eval()
    assert code.fuse[0].kernel_size == (1, 1) and code.conv[0].in_channels == 64
    linear = FusionLayer(192, 64, 32, 32, cmsa=True, msfs=False, fusion="paper", cmsa_gate="linear").cmsa
    att = linear(resampled)
    torch.testing.assert_close(att, linear.conv1(linear.conv3(torch.cat(resampled, 1))))
    assert att.min() < 0
    with torch.device("meta"):
        paper = create_model("gmsrf", variant="paper", fusion="paper")
        code_net = create_model("gmsrf", variant="paper")
    assert sum(p.numel() for p in paper.parameters()) != sum(p.numel() for p in code_net.parameters())
    with pytest.raises(ConfigError, match="fusion='eq2'"):
        create_model("gmsrf", fusion="eq2")
    with pytest.raises(ConfigError, match="cmsa_gate"):
        create_model("gmsrf", cmsa_gate="relu")


def test_res2net50d_uses_the_names_of_the_authors_imagenet_file():
    """res2net50_v1b_26w_4s-3cf99910.pth (Res2Net authors) has conv1.{0,1,3,4,6}, bn1, layerN, fc: timm's names."""
    import timm

    with torch.device("meta"):
        state = timm.create_model("res2net50d").state_dict()
    expected = {"conv1.0.weight": (32, 3, 3, 3), "conv1.1.running_var": (32,), "conv1.3.weight": (32, 32, 3, 3),
                "conv1.4.weight": (32,), "conv1.6.weight": (64, 32, 3, 3), "bn1.weight": (64,),
                "layer1.0.downsample.1.weight": (256, 64, 1, 1), "layer3.5.convs.2.weight": (104, 104, 3, 3),
                "fc.weight": (1000, 2048)}
    assert {k: tuple(state[k].shape) for k in expected} == expected
