"""Official GMSRF-Net parameter count against an independent count from the notes' layer list (notes §1.1-1.4)."""
import timm
import torch

from polyplib.models import create_model


def conv(cin: int, cout: int, kh: int, kw: int | None = None, bias: bool = False) -> int:
    return cin * cout * kh * (kw or kh) + (cout if bias else 0)


def basic(cin: int, cout: int, kh: int, kw: int | None = None) -> int:
    """BasicConv2d = conv without bias + BatchNorm (weight, bias)."""
    return conv(cin, cout, kh, kw) + 2 * cout


def res2net50_layers() -> int:
    """Res2Net-50 26w4s layer1..layer4 (Bottle2neck: 1x1, three 3x3 on width-splits, 1x1, shortcut)."""
    total, inplanes = 0, 64
    for planes, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3)):
        width = planes * 26 // 64
        for b in range(blocks):
            total += basic(inplanes, 4 * width, 1) + 3 * basic(width, width, 3) + basic(4 * width, 4 * planes, 1)
            if b == 0:
                total += basic(inplanes, 4 * planes, 1)
            inplanes = 4 * planes
    return total


def rfb(cin: int, c: int) -> int:
    """RFB_modified: 4 branch 1x1 + conv_res 1x1, (1xk, kx1, 3x3) for k = 3, 5, 7, conv_cat 3x3 on 4c."""
    return 5 * basic(cin, c, 1) + sum(basic(c, c, 1, k) + basic(c, c, k, 1) + basic(c, c, 3) for k in (3, 5, 7)) \
        + basic(4 * c, c, 3)


# notes §1.3: per-scale channel lists of `exchange(32,64,128,256,32,64)` and growth
WIDTH = {"x": 32, "y": 64, "v": 128, "w": 256}
LISTS = {"x": [32, 160, 192, 224], "y": [64, 192, 224, 256], "v": [128, 288, 352, 416], "w": [256, 416, 480, 544]}
GROWTH = {"x": 32, "y": 32, "v": 64, "w": 64}
LEVEL = {"x": 0, "y": 1, "v": 2, "w": 3}


def se(c: int) -> int:
    return 2 * c * (c // 8)


def exchange() -> int:
    total = sum(basic(WIDTH[s], GROWTH[s], 3) for s in WIDTH)  # l = 1
    for layer in (1, 2, 3):  # builds inputs of l = 2, 3, 4
        for dst in WIDTH:
            for src in WIDTH:
                if src != dst:  # chain of |Δlevel| (transposed) convs k4, first from the source growth to 32
                    steps = abs(LEVEL[src] - LEVEL[dst])
                    total += conv(GROWTH[src], 32, 4) + (steps - 1) * conv(32, 32, 4)
            total += conv(96, 32, 3) + conv(32, 1, 1)  # attention map
            cin = LISTS[dst][layer]
            if layer < 3:
                total += basic(cin, WIDTH[dst], 1) + se(WIDTH[dst]) + basic(WIDTH[dst], GROWTH[dst], 3)
            else:
                total += basic(cin, cin, 1) + se(cin) + basic(cin, WIDTH[dst], 3)
    return total


def decoder() -> int:
    return (conv(256, 128, 4, bias=True) + conv(256, 128, 3) + conv(128, 64, 4, bias=True) + conv(128, 64, 3)
            + conv(64, 32, 4, bias=True) + basic(64, 32, 3) + basic(32, 1, 3)
            + conv(256, 1, 1, bias=True) + conv(128, 1, 1, bias=True) + conv(64, 1, 1, bias=True))


def test_res2net_layer_count_matches_timm():
    with torch.device("meta"):
        net = timm.create_model("res2net50_26w_4s")
    counted = sum(p.numel() for name, p in net.named_parameters() if name.startswith("layer"))
    assert counted == res2net50_layers()


def test_official_parameter_count_equals_authors_code_without_unused_members():
    expected = (res2net50_layers() + basic(3, 64, 3) + basic(256, 32, 1) + rfb(512, 64) + rfb(1024, 128)
                + rfb(2048, 256) + 2 * exchange() + decoder())
    with torch.device("meta"):  # structure only, no weight initialisation
        model = create_model("gmsrf", variant="official")
    assert sum(p.numel() for p in model.parameters()) == expected
    assert all(p.requires_grad for p in model.parameters())
    with torch.device("meta"):  # timm's strided-1x1-shortcut Res2Net has the same count
        strided = create_model("gmsrf", variant="official", backbone="res2net50_26w_4s")
    assert sum(p.numel() for p in strided.parameters()) == expected


def test_ablation_switches_remove_exactly_their_parameters():
    def count(**kw) -> int:
        with torch.device("meta"):
            return sum(p.numel() for p in create_model("gmsrf", variant="official", **kw).parameters())

    full = count()
    att = conv(96, 32, 3) + conv(32, 1, 1)
    se_total = sum(se(WIDTH[s]) * 2 + se(LISTS[s][3]) for s in WIDTH)
    assert full - count(cmsa=False) == 2 * 3 * 4 * att
    assert full - count(msfs=False) == 2 * se_total
    assert full - count(num_modules=1) == exchange()
    assert full - count(num_modules=3) == -exchange()
    assert full - count(deep_supervision=False) == (256 + 1) + (128 + 1) + (64 + 1)


def test_paper_variant_uses_resnet50_features_and_rfb_on_all_scales():
    with torch.device("meta"):
        model = create_model("gmsrf", variant="paper")
        backbone = timm.create_model("resnet50")
    resnet = sum(p.numel() for n, p in backbone.named_parameters() if not n.startswith("fc."))
    expected = (resnet + rfb(256, 32) + rfb(512, 64) + rfb(1024, 128) + rfb(2048, 256) + 2 * exchange() + decoder())
    assert sum(p.numel() for p in model.parameters()) == expected
