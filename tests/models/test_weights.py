"""Loading weights: every valid safetensors file loads; pickles under any name are refused unrun."""

from __future__ import annotations

import os
import pickle
import random

import pytest
import torch
from safetensors.torch import save, save_file
from torch import nn

from mintaudit.errors import CorruptFileError, WeightsError
from mintaudit.models import ModelSpec, build_model, load_weights


def _tiny():
    return build_model(ModelSpec("tiny-cnn", 1, 3, (8, 8)))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


def _header_length(data: bytes) -> int:
    return int.from_bytes(data[:8], "little")


def _save_with_header_length(state, path, target: int) -> None:
    """Save ``state`` with save_file, padding the metadata so the JSON header is exactly ``target`` bytes."""
    base = _header_length(save(state, metadata={"pad": ""}))
    for extra in range(max(0, target - base - 16), target - base + 16):
        if _header_length(save(state, metadata={"pad": "x" * extra})) == target:
            save_file(state, str(path), metadata={"pad": "x" * extra})
            assert _header_length(path.read_bytes()) == target
            return
    raise AssertionError(f"no padding gives a header of {target} bytes")


@pytest.mark.parametrize(
    "target,first_bytes",
    [(0x280, b"\x80"), (0x1080, b"\x80"), (0x4B50, b"PK")],
    ids=["low-byte-0x80", "0x1080", "starts-PK"],
)
def test_safetensors_whose_header_length_looks_like_a_pickle_or_zip_load(tmp_path, target, first_bytes):
    model = _tiny()
    path = tmp_path / "w.safetensors"
    _save_with_header_length(_state(model), path, target)
    assert path.read_bytes().startswith(first_bytes)  # what the old sniffing refused
    loaded = load_weights(_tiny(), path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_a_truncated_safetensors_whose_length_starts_with_0x80_is_corrupt_not_a_pickle(tmp_path):
    path = tmp_path / "w.safetensors"
    _save_with_header_length(_state(_tiny()), path, 0x280)
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:100])  # cut inside the JSON header
    with pytest.raises(CorruptFileError, match="not a safetensors file") as e:
        load_weights(_tiny(), tmp_path / "cut.safetensors")
    assert "pickle" not in str(e.value)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["pickle", "pickle-protocol-2", "torch-zip", "torch-zip-with-payload"])
def test_pickles_and_torch_archives_renamed_safetensors_are_refused(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "w.safetensors"
    if kind == "pickle":
        path.write_bytes(pickle.dumps(_Evil(marker)))
    elif kind == "pickle-protocol-2":
        path.write_bytes(pickle.dumps({"w": _Evil(marker)}, protocol=2))
    elif kind == "torch-zip":
        torch.save(_tiny().state_dict(), path)
    else:
        torch.save({"w": torch.zeros(2), "x": _Evil(marker)}, path)
    with pytest.raises(WeightsError) as e:
        load_weights(_tiny(), path)
    msg = str(e.value)
    assert "named .safetensors but holds a pickle/torch archive" in msg and "safetensors.torch.save_file" in msg
    assert "\n" not in msg
    assert not marker.exists()


@pytest.mark.parametrize("payload", ["os.system", "class"])
def test_malicious_pt_is_refused_without_torch_advice_to_unpickle(tmp_path, payload):
    import argparse

    marker = tmp_path / "pwned"
    path = tmp_path / "w.pt"
    bad = _Evil(marker) if payload == "os.system" else argparse.Namespace(x=1)
    torch.save({"w": torch.zeros(2), "x": bad}, path)
    with pytest.raises(WeightsError) as e:
        load_weights(_tiny(), path)
    msg = str(e.value)
    assert not marker.exists()
    assert ("system" if payload == "os.system" else "argparse.Namespace") in msg
    assert "weights_only" not in msg and "False" not in msg and "safe_globals" not in msg, msg
    assert "convert the file to .safetensors in a trusted environment" in msg
    assert "\n" not in msg and "\x1b" not in msg


def test_torch_advice_is_stripped_from_any_unpickling_error(tmp_path, monkeypatch):
    torch.save(_tiny().state_dict(), tmp_path / "w.pt")

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError(
            "Weights only load failed. This file can still be loaded, to do so you have two options, "
            "\x1b[1mdo those steps only if you trust the source of the checkpoint\x1b[0m.\n\t(1) Re-running "
            "`torch.load` with `weights_only` set to `False` will likely succeed.\n\tUnsupported operand 99.\n"
            "Check the documentation of torch.load https://pytorch.org/docs/stable/generated/torch.load.html."
        )

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(WeightsError) as e:
        load_weights(_tiny(), tmp_path / "w.pt")
    msg = str(e.value)
    assert "Unsupported operand 99" in msg
    assert "weights_only" not in msg and "trust the source" not in msg and "http" not in msg, msg


_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def _random_model(rng: random.Random) -> nn.Module:
    layers: list[nn.Module] = []
    width = rng.randint(1, 24)
    for _ in range(rng.randint(1, 4)):
        out = rng.randint(1, 24)
        layers.append(nn.Linear(width, out, bias=rng.random() < 0.7))
        if rng.random() < 0.3:
            layers.append(nn.BatchNorm1d(out))  # int64 num_batches_tracked too
        width = out
    return nn.Sequential(*layers).to(rng.choice(_DTYPES))


def test_property_300_random_safetensors_models_load(tmp_path):
    """About 4% of random models have a header length whose first bytes are 0x80 or 'PK'."""
    looks_pickled = 0
    for i in range(300):
        seed = 1000 + i
        torch.manual_seed(seed)
        model = _random_model(random.Random(seed))
        path = tmp_path / f"m{i}.safetensors"
        save_file(_state(model), str(path))
        head = path.read_bytes()[:2]
        looks_pickled += head[:1] == b"\x80" or head == b"PK"
        torch.manual_seed(seed + 1)
        fresh = _random_model(random.Random(seed))
        load_weights(fresh, path)
        for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
            assert a.dtype == b.dtype and torch.equal(a, b), (i, k)
    assert looks_pickled >= 3  # the sample does cover the bytes the old sniffing refused
