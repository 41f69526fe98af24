"""The aMINT backbones: shapes, one training step, tap presets that record and backpropagate."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mintaudit.errors import ConfigError, LayerNotFoundError, ModelError
from mintaudit.models import (
    ACTIVE_TAPS,
    MODEL_NAMES,
    ModelSpec,
    ObjClsCNN,
    TinyCNN,
    ViT,
    active_taps,
    build_model,
)
from mintaudit.taps import Recorder

# Tiny widths keep every model a few thousand to a few hundred thousand parameters.
TINY: dict[str, dict[str, object]] = {
    "mobilenet": {"width": 0.25},
    "resnet50": {"base_width": 8},
    "resnet101": {"base_width": 8},
    "densenet121": {"growth_rate": 4},
    "xception": {"width": 0.125},
    "vit": {"dim": 16, "depth": 4, "heads": 2},
}
INPUTS = [(1, 28), (3, 32)]
SETUPS = ("entry", "middle", "output")
NUM_CLASSES = 5
BATCH = 3


@pytest.fixture(autouse=True)
def _one_thread():
    """These models run many tiny ops: two threads on a busy 2-core machine spin-wait (100 s vs 7 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _build(name: str, channels: int, size: int) -> nn.Module:
    return build_model(ModelSpec(name, channels, NUM_CLASSES, (size, size), kwargs=dict(TINY[name])))


def _first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def _last_linear(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("channels,size", [*INPUTS, (3, 64)])
def test_forward_gives_logits(name, channels, size):
    model = _build(name, channels, size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, NUM_CLASSES) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("channels,size", INPUTS)
def test_one_adam_step_stays_finite(name, channels, size):
    model = _build(name, channels, size).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(BATCH, channels, size, size), torch.arange(BATCH) % NUM_CLASSES
    before = [p.detach().clone() for p in model.parameters()]
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert torch.isfinite(model(x)).all()


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("channels,size", INPUTS)
def test_preset_taps_record_and_backpropagate(name, channels, size):
    model = _build(name, channels, size)
    taps = list(dict.fromkeys(t for s in SETUPS for t in active_taps(name, s, model)))
    assert set(taps) <= {n for n, _ in model.named_modules()}
    x = torch.randn(BATCH, channels, size, size)

    model.eval()  # hooks change nothing
    with torch.no_grad():
        plain = model(x)
        with Recorder(model, taps) as rec:
            hooked = model(x)
            rec.pop()
    assert torch.equal(plain, hooked)

    model.train()
    with Recorder(model, taps, detach=False) as rec:
        model(x)
        outputs = rec.pop()
    assert list(outputs) == taps  # hooks fire in forward order
    first, last = _first_conv(model).weight, _last_linear(model).weight
    for tap, out in outputs.items():
        assert out.dim() == (3 if name == "vit" else 4), (tap, tuple(out.shape))
        assert out.shape[0] == BATCH and out.requires_grad
        g_first, g_last = torch.autograd.grad(out.square().mean(), [first, last], retain_graph=True, allow_unused=True)
        assert g_first is not None and g_first.abs().sum() > 0, f"no gradient from {tap} to the stem"
        assert g_last is None, f"{tap} should lie before the classifier"


@pytest.mark.parametrize("name", list(TINY))
def test_no_module_works_in_place(name):
    model = _build(name, 1, 28)
    assert not [n for n, m in model.named_modules() if getattr(m, "inplace", False)]


def test_every_zoo_model_has_presets():
    assert set(ACTIVE_TAPS) == set(MODEL_NAMES)
    for name, presets in ACTIVE_TAPS.items():
        assert tuple(presets) == SETUPS
        for setup in SETUPS:
            assert active_taps(name, setup) == presets[setup]
            assert 1 <= len(presets[setup]) <= 2


def test_published_taps_are_the_middle_presets():
    assert active_taps("mobilenet", "middle") == ["conv2", "conv3"]
    assert active_taps("resnet50", "middle") == active_taps("resnet101", "middle") == ["layer2", "layer3"]
    assert active_taps("densenet121", "middle") == ["transition2", "transition3"]
    assert active_taps("xception", "middle") == ["middle"]
    assert active_taps("vit", "middle") == ["blocks.7"]


def test_presets_of_the_older_zoo_models_exist():
    objcls, tiny = ObjClsCNN(1, 10, 28), TinyCNN(1, 10, 8)
    for setup in SETUPS:
        assert active_taps("objcls-cnn", setup, objcls) == ACTIVE_TAPS["objcls-cnn"][setup]
        assert active_taps("tiny-cnn", setup, tiny) == ACTIVE_TAPS["tiny-cnn"][setup]


def test_presets_returned_are_copies():
    active_taps("resnet50", "middle").append("fc")
    assert ACTIVE_TAPS["resnet50"]["middle"] == ["layer2", "layer3"]


def test_vit_taps_scale_with_depth():
    default = ViT(1, 10, 28)
    assert {s: active_taps("vit", s, default) for s in SETUPS} == ACTIVE_TAPS["vit"]
    four = ViT(1, 10, 28, dim=16, depth=4, heads=2)
    assert active_taps("vit", "entry", four) == ["blocks.0", "blocks.1"]
    assert active_taps("vit", "middle", four) == ["blocks.2"]
    assert active_taps("vit", "output", four) == ["blocks.3", "norm"]
    one = ViT(1, 10, 28, dim=16, depth=1, heads=2)
    assert {s: active_taps("vit", s, one) for s in SETUPS} == {
        "entry": ["blocks.0"],
        "middle": ["blocks.0"],
        "output": ["blocks.0", "norm"],
    }


def test_unknown_name_or_setup_lists_the_choices():
    with pytest.raises(ConfigError, match="choose one of mobilenet.*vit") as info:
        active_taps("resnet5", "middle")
    assert "Did you mean resnet50" in str(info.value)
    with pytest.raises(ConfigError, match="choose one of entry, middle, output"):
        active_taps("resnet50", "late")
    with pytest.raises(ValueError):  # also a built-in ValueError
        active_taps("nope", "entry")


def test_preset_for_the_wrong_model_is_refused():
    with pytest.raises(LayerNotFoundError, match="layer2"):
        active_taps("resnet50", "middle", TinyCNN(1, 10))
    with pytest.raises(ConfigError, match="blocks"):
        active_taps("vit", "middle", TinyCNN(1, 10))


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("vit", {"dim": 10, "heads": 4}, "must divide dim"),
        ("mobilenet", {"width": 0.0}, "width must be > 0"),
        ("resnet50", {"stem": "big"}, "stem must be one of auto, small, imagenet"),
        ("densenet121", {"compression": 1.5}, "compression"),
        ("xception", {"depth": 3}, "depth"),
    ],
)
def test_bad_options_raise_model_error(name, kwargs, match):
    with pytest.raises(ModelError, match=match):
        build_model(ModelSpec(name, 1, 10, (28, 28), kwargs=kwargs))


def test_vit_refuses_another_input_size():
    with pytest.raises(ModelError, match="28x28"):
        ViT(1, 10, 28, dim=16, depth=1, heads=2)(torch.zeros(1, 1, 32, 32))


def test_resnet101_full_width_has_tens_of_millions_of_parameters():
    model = build_model(ModelSpec("resnet101", 1, 10, (28, 28)))
    assert 40e6 < sum(p.numel() for p in model.parameters()) < 45e6
