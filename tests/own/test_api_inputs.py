"""mintaudit.audit takes what Python users pass, and refuses the rest in one line before any forward.

Hostile cases: C070 C073 (dict batches, lists of batches), C074 C078 (ranges), C079 C081 (sizes), C083 (overlap),
C092 C093 (model objects), C096 C098 C099 (PIL images, string and bool labels).
"""

from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import mintaudit
from mintaudit.data import load_dataset
from mintaudit.detectors import DetectorConfig
from mintaudit.errors import DataError, MintauditError, ModelError

FAST = {"fusion": "outputs", "n_bootstrap": 20, "detector": DetectorConfig(epochs=2), "show_progress": False}


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


@pytest.fixture(scope="module")
def digits():
    """A small MLP trained on 300 digits with the owner's x / 255; the raw pixels too."""
    torch.manual_seed(0)
    ds = load_dataset("digits")
    order = np.random.default_rng(0).permutation(len(ds))
    idx = {"members": np.sort(order[:300]), "external": order[300:600], "test": order[600:900]}
    pixels = torch.from_numpy(ds.images).permute(0, 3, 1, 2).contiguous()  # uint8 (N, 1, 8, 8)
    x, y = pixels.float() / 255, torch.from_numpy(ds.labels)
    net = _mlp()
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(60):
        loss = nn.functional.cross_entropy(net(x[idx["members"]]), y[idx["members"]])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    return net, x, y, pixels, idx


def _pairs(x, y, idx):
    return {role: (x[i], y[i]) for role, i in idx.items()}


def _metrics(result):
    return [(r.method, r.signal, r.layer, r.metrics["auc"], r.metrics["accuracy"]) for r in result.rows]


@pytest.fixture(scope="module")
def baseline(digits):
    net, x, y, _, idx = digits
    return _metrics(mintaudit.audit(net, **_pairs(x, y, idx), **FAST))


class _Dicts(Dataset):
    def __init__(self, x, y, keys):
        self.x, self.y, self.keys = x, y, keys

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {self.keys[0]: self.x[i], self.keys[1]: int(self.y[i])}


def test_dict_batches_lists_of_batches_and_datasets_give_the_same_audit(digits, baseline):  # C070, C073
    net, x, y, _, idx = digits
    m, e, t = idx["members"], idx["external"], idx["test"]
    result = mintaudit.audit(
        net,
        members=DataLoader(_Dicts(x[m], y[m], ("pixel_values", "labels")), batch_size=64),
        external=[(x[e[:128]], y[e[:128]]), (x[e[128:]], y[e[128:]])],
        test=_Dicts(x[t], y[t], ("image", "label")),
        **FAST,
    )
    assert _metrics(result) == baseline


def test_raw_pixels_with_preprocess_give_the_same_audit(digits, baseline):
    net, _, y, pixels, idx = digits
    m, e, t = idx["members"], idx["external"], idx["test"]
    result = mintaudit.audit(
        net,
        members=(pixels[m], y[m]),  # uint8 NCHW
        external=(pixels[e].permute(0, 2, 3, 1).numpy(), y[e].numpy()),  # uint8 NHWC arrays
        test=(pixels[t].float(), y[t]),  # 0-255 floats
        preprocess=mintaudit.Preprocess(mean=0, std=1),
        **FAST,
    )
    assert _metrics(result) == baseline
    assert result.report["model"]["preprocess"] == {"mean": [0.0], "std": [1.0], "grey_to_rgb": False}
    # a model that takes 0-255 values as they are: the refusal's way out is std=1/255, the pixels pass unchanged
    unscaled = _Unscaled(net)
    sets = {role: (pixels[i].float(), y[i]) for role, i in idx.items()}
    with pytest.raises(DataError, match=r"as they are: preprocess=mintaudit.Preprocess\(mean=0, std=1 / 255\)"):
        mintaudit.audit(unscaled, **sets, **FAST)
    result = mintaudit.audit(unscaled, **sets, preprocess=mintaudit.Preprocess(mean=0, std=1 / 255), **FAST)
    assert _metrics(result) == baseline


class _Unscaled(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x / 255)


class _Wrapped(nn.Module):
    def __init__(self, net, kind):
        super().__init__()
        self.net, self.kind = net, kind

    def forward(self, x):
        logits = self.net(x)
        if self.kind == "model-output":
            from transformers.modeling_outputs import ImageClassifierOutput

            return ImageClassifierOutput(logits=logits, hidden_states=(x,))
        if self.kind == "dict":
            return {"features": x.flatten(1), "logits": logits}
        return logits, x.flatten(1)


@pytest.mark.parametrize("kind", ["model-output", "dict", "tuple"])
def test_models_returning_a_model_output_a_dict_or_a_tuple_are_audited_on_their_logits(digits, baseline, kind):
    if kind == "model-output":
        pytest.importorskip("transformers")
    net, x, y, _, idx = digits
    result = mintaudit.audit(_Wrapped(net, kind), **_pairs(x, y, idx), **FAST)
    assert _metrics(result) == baseline


def test_a_transformers_model_is_audited_as_it_is(digits):
    transformers = pytest.importorskip("transformers")
    _, x, y, _, idx = digits
    cfg = transformers.ViTConfig(
        image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=10,
    )  # fmt: skip
    torch.manual_seed(0)
    vit = transformers.ViTForImageClassification(cfg).eval()
    block = next(n for n, _ in vit.named_modules() if n.endswith(("layer.0", "layers.0")))  # 4.x / 5.x names
    result = mintaudit.audit(
        vit, **_pairs(x, y, idx), taps=[block], allow_weak_model=True, **{**FAST, "fusion": "none"}
    )
    with torch.no_grad():
        want = (vit(x[idx["members"]]).logits.argmax(1) == y[idx["members"]]).float().mean().item()
    assert result.check.members_accuracy == pytest.approx(want)
    assert [r.layer for r in result.rows if r.method == "passive-mint"] == [block]
    assert not vit.training


class _PIL(Dataset):
    def __init__(self, pixels, y):
        self.pixels, self.y = pixels, y

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, i):
        from PIL import Image

        return Image.fromarray(self.pixels[i, 0].numpy()), int(self.y[i])


class _Counting(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def _cases(x, y, pixels, idx):
    m, e, t = (idx[r] for r in ("members", "external", "test"))
    sets = _pairs(x, y, idx)
    raw = {"members": (pixels[m], y[m]), "external": (pixels[e], y[e]), "test": (pixels[t], y[t])}
    return {
        "C074 uint8": ({**sets, **raw}, {}, "inputs are uint8 (raw pixels 0-255?)"),
        "0-255 floats": ({**sets, "members": (pixels[m].float(), y[m])}, {}, "looks like raw 0-255 pixels"),
        "C078 1e30": ({**sets, "members": (x[m] * 1e30, y[m])}, {}, "members: inputs reach |x| = 1e+30"),
        "one role scaled": ({**sets, "test": (x[t] * 19, y[t])}, {}, "test's inputs spread 19.0x wider"),
        "C079 empty": (
            {**sets, "members": (x[:0], y[:0])},
            {},
            "members holds no samples (the tuple given yields none)",
        ),
        "C081 3 members": ({**sets, "members": (x[m[:3]], y[m[:3]])}, {}, "known members"),
        "19 test": ({**sets, "test": (x[t[:19]], y[t[:19]])}, {}, "test: 19 samples"),
        "C083 same object": ({**sets, "test": sets["members"]}, {}, "test is the same object as members"),
        "C083 same rows": (
            {**sets, "external": (x[m].clone(), y[m].clone())},
            {},
            "members and external share 300 identical input(s)",
        ),
        "C096 PIL": ({**sets, "test": _PIL(pixels[t], y[t])}, {}, "yields PIL images (raw pixels)"),
        "C096 PIL loader": ({**sets, "test": DataLoader(_PIL(pixels[t], y[t]), batch_size=8)}, {}, "cannot batch"),
        "C098 str labels": ({**sets, "test": [(x[i], str(int(y[i]))) for i in t]}, {}, "string labels such as '"),
        "C099 bool labels": ({**sets, "test": (x[t], y[t] > 4)}, {}, "bool labels (True/False)"),
        "dict without labels": ({**sets, "test": [{"pixel_values": x[t]}]}, {}, "no label (looked for labels"),
        "n_bootstrap": (sets, {"n_bootstrap": -1}, "n_bootstrap must be a whole number in [0, 2147483647], got -1"),
        "known_fraction": (sets, {"known_fraction": 1.5}, "known_fraction must be a finite number in (0, 1)"),
        "batch_size": (sets, {"batch_size": 0}, "batch_size must be a whole number in [1, 2147483647], got 0"),
        "num_classes": (sets, {"num_classes": 1}, "num_classes must be a whole number >= 2"),
        "fusion": (sets, {"fusion": "all"}, "fusion must be one of"),
        "preprocess on scaled": (sets, {"preprocess": mintaudit.Preprocess(mean=0, std=1)}, "already scaled"),
        "preprocess not one": (raw, {"preprocess": "0.5"}, "preprocess must be a mintaudit.Preprocess"),
        "preprocess RGB on grey": (
            raw,
            {"preprocess": mintaudit.Preprocess(mean=(0.5, 0.5, 0.5), std=0.5)},
            "preprocess mean has 3 values but the model sees 1 channel(s)",
        ),
    }


CASES = [
    "C074 uint8", "0-255 floats", "C078 1e30", "one role scaled", "C079 empty", "C081 3 members", "19 test",
    "C083 same object", "C083 same rows", "C096 PIL", "C096 PIL loader", "C098 str labels", "C099 bool labels",
    "dict without labels", "n_bootstrap", "known_fraction", "batch_size", "num_classes", "fusion",
    "preprocess on scaled", "preprocess not one", "preprocess RGB on grey",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_sets_and_arguments_are_refused_in_one_line_before_any_forward(digits, case):
    net, x, y, pixels, idx = digits
    sets, kwargs, needle = _cases(x, y, pixels, idx)[case]
    model = _Counting(net)
    with pytest.raises(MintauditError) as e:
        mintaudit.audit(model, **sets, **{**FAST, **kwargs})
    text = str(e.value)
    assert needle in text, text
    assert "\n" not in text and "--" not in text, text  # one line, and no command-line flags for a Python caller
    assert model.calls == 0  # refused before the model ran


def test_a_plain_callable_and_a_model_on_the_meta_device_are_refused(digits):  # C093, C092
    net, x, y, _, idx = digits
    with pytest.raises(ModelError, match="takes the model as a torch.nn.Module, got function"):
        mintaudit.audit(lambda b: net(b), **_pairs(x, y, idx), **FAST)
    with pytest.raises(ModelError, match="weights are on the meta device"):
        mintaudit.audit(_mlp().to("meta"), **_pairs(x, y, idx), **FAST)


def test_a_weak_model_is_refused_in_python_words(digits):
    net, x, y, _, idx = digits
    shifted = (y + 1) % 10
    with pytest.raises(mintaudit.errors.WeakModelError) as e:
        mintaudit.audit(net, **_pairs(x, shifted, idx), **FAST)
    assert "allow_weak_model=True" in str(e.value) and "--" not in str(e.value)


class _Stream(torch.utils.data.IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        for i in range(0, len(self.x), 7):
            yield {"x": self.x[i : i + 7], "y": self.y[i : i + 7]}


def test_every_form_reads_the_same_samples():
    from mintaudit.data.tensors import collect_samples

    x, y = torch.rand(30, 1, 4, 4, dtype=torch.float64), torch.arange(30) % 3
    want_x, want_y = collect_samples((x, y), "members")
    forms = {
        "iterable dataset of dict batches": _Stream(x, y),
        "generator of samples": ((x[i], y[i]) for i in range(30)),
        "dict of whole tensors": {"pixel_values": x, "labels": y},
        "numpy pair with a list of labels": (x.numpy(), y.tolist()),
        "float labels that are whole": (x, y.double()),
    }
    for form, data in forms.items():
        got_x, got_y = collect_samples(data, "members")
        assert torch.equal(got_x, want_x) and torch.equal(got_y, want_y), form
