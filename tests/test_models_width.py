"""GMSRF-Net `width` option (a smoke-profile knob, not in the paper): fewer parameters, same outputs, ablations work."""
import pytest
import torch

from polyplib.errors import ConfigError
from polyplib.models import create_model
from polyplib.models.gmsrf import scale_widths

SMALL = {"variant": "paper", "backbone": "resnet10t"}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_scale_widths_rounds_to_multiples_of_eight():
    assert scale_widths((32, 64, 128, 256), 1.0) == (32, 64, 128, 256)
    assert scale_widths((32, 64, 128, 256), 0.25) == (8, 16, 32, 64)
    assert scale_widths((32, 32, 64, 64), 0.1) == (8, 8, 8, 8)


def test_width_one_is_the_default_network():
    with torch.device("meta"):
        default = create_model("gmsrf", **SMALL)
        explicit = create_model("gmsrf", **SMALL, width=1.0)
    assert n_params(default) == n_params(explicit)
    assert [p.shape for p in default.parameters()] == [p.shape for p in explicit.parameters()]


def test_narrow_network_has_fewer_params_and_narrow_scales():
    with torch.device("meta"):
        full = create_model("gmsrf", **SMALL)
        narrow = create_model("gmsrf", **SMALL, width=0.25)
    assert n_params(narrow) < 0.5 * n_params(full)
    # encoder is unchanged, everything after it shrinks
    assert n_params(narrow.encoder) == n_params(full.encoder)
    gmsrf_full = sum(n_params(m) for m in (full.reducers, full.gmsrf, full.decoder))
    gmsrf_narrow = sum(n_params(m) for m in (narrow.reducers, narrow.gmsrf, narrow.decoder))
    assert gmsrf_narrow < 0.1 * gmsrf_full
    assert [r.conv_res[0].out_channels for r in narrow.reducers] == [8, 16, 32, 64]


@pytest.mark.parametrize("options", [{}, {"cmsa": False}, {"msfs": False}, {"num_modules": 1},
                                     {"deep_supervision": False}, {"num_modules": 0}])
def test_narrow_network_outputs_and_ablations(options):
    torch.manual_seed(0)
    model = create_model("gmsrf", **SMALL, width=0.25, **options)
    image = torch.rand(2, 3, 64, 64)
    model.train()
    outputs = model(image)
    deep = options.get("deep_supervision", True)
    outputs = outputs if deep else (outputs,)
    assert len(outputs) == (4 if deep else 1)
    assert all(o.shape == (2, 1, 64, 64) for o in outputs)
    sum(o.mean() for o in outputs).backward()
    assert all(p.grad is not None for p in model.decoder.parameters())
    model.eval()
    with torch.no_grad():
        out = model(image)
    assert out.shape == (2, 1, 64, 64) and torch.isfinite(out).all()
    fusions = [f for module in model.gmsrf for per_scale in module.layers for f in per_scale]
    assert len(model.gmsrf) == options.get("num_modules", 2)
    assert all((f.cmsa is None) == (options.get("cmsa") is False) for f in fusions)
    assert all(hasattr(f.msfs, "fc") == (options.get("msfs") is not False) for f in fusions)


@pytest.mark.parametrize("width", [0, -0.5, 1.5, "half"])
def test_bad_width_is_a_config_error(width):
    with pytest.raises(ConfigError, match="width"):
        create_model("gmsrf", **SMALL, width=width)
