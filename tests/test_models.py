import pickle
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from mintaudit.errors import CorruptFileError, ModelError, WeightsError
from mintaudit.models import ModelSpec, ObjClsCNN, build_model, load_model, load_weights, published_taps, save_model
from mintaudit.taps import select_layers


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32), (1, 8), (3, 64), (1, 5)])
def test_objcls_cnn_any_size(channels, size):
    m = ObjClsCNN(channels, 7, size).eval()
    assert m(torch.zeros(2, channels, size, size)).shape == (2, 7)


def test_objcls_cnn_layout_matches_the_study():
    m = ObjClsCNN(1, 10, 28)
    convs = [mod.out_channels for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert convs == [32, 32, 64, 64, 128, 128]
    assert m.fc.out_features == 128
    taps = published_taps("objcls-cnn")
    assert [t[0] for t in taps] == [f"L{i}" for i in range(1, 8)]
    assert select_layers(m, [t[1] for t in taps]) == [t[1] for t in taps]


def test_save_and_load_roundtrip(tmp_path):
    spec = ModelSpec("tiny-cnn", 1, 3, (8, 8))
    m = build_model(spec).eval()
    save_model(m, spec, tmp_path, {"note": "x"})
    m2, spec2, info = load_model(tmp_path)
    x = torch.randn(2, 1, 8, 8)
    assert spec2 == spec and info["note"] == "x"
    assert torch.equal(m(x), m2(x))


def test_state_dict_pt_loads_with_weights_only(tmp_path):
    m = build_model(ModelSpec("tiny-cnn", 1, 3, (8, 8)))
    torch.save(m.state_dict(), tmp_path / "w.pt")
    m2 = load_weights(build_model(ModelSpec("tiny-cnn", 1, 3, (8, 8))), tmp_path / "w.pt")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))


def test_pickle_in_place_of_safetensors_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(WeightsError, match="pickle"):
        load_weights(build_model(ModelSpec("tiny-cnn", 1, 3, (8, 8))), path)


def test_raw_pickle_pt_refused_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    path = tmp_path / "w.pt"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(WeightsError):
        load_weights(build_model(ModelSpec("tiny-cnn", 1, 3, (8, 8))), path)
    assert not marker.exists()


def test_truncated_safetensors_and_wrong_extension(tmp_path):
    m = build_model(ModelSpec("tiny-cnn", 1, 3, (8, 8)))
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(tmp_path / "w.safetensors"))
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError):
        load_weights(m, tmp_path / "t.safetensors")
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(WeightsError, match="extension"):
        load_weights(m, tmp_path / "w.npz")


def test_weights_that_do_not_fit(tmp_path):
    m3 = build_model(ModelSpec("tiny-cnn", 1, 3, (8, 8)))
    save_file({k: v.contiguous() for k, v in m3.state_dict().items()}, str(tmp_path / "w.safetensors"))
    m10 = build_model(ModelSpec("tiny-cnn", 1, 10, (8, 8)))
    with pytest.raises(WeightsError, match=r"do not fit the architecture: 2 of another shape \(e.g. fc.bias"):
        load_weights(m10, tmp_path / "w.safetensors")


def test_user_factory(tmp_path, monkeypatch):
    (tmp_path / "usermodels.py").write_text(
        textwrap.dedent("""
        import torch
        def make(num_classes, in_channels):
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_channels * 64, num_classes))
        not_callable = 3
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    m = build_model(ModelSpec("usermodels:make", 1, 4, (8, 8)))
    assert m(torch.zeros(1, 1, 8, 8)).shape == (1, 4)
    with pytest.raises(ModelError, match="no callable"):
        build_model(ModelSpec("usermodels:not_callable", 1, 4, (8, 8)))
    with pytest.raises(ModelError, match="cannot import"):
        build_model(ModelSpec("no_such_module_xyz:make", 1, 4, (8, 8)))
    with pytest.raises(ModelError, match="Did you mean objcls-cnn"):
        build_model(ModelSpec("objcls_cnn", 1, 4, (8, 8)))
    sys.modules.pop("usermodels", None)


def test_check_model_restores_every_mode_and_changes_nothing():
    from mintaudit.models import check_model

    m = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(64, 6),
        torch.nn.BatchNorm1d(6),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(6, 3),
    )
    m.train()
    m[3].eval()  # a mixed state: model.train(was_training) would not restore it
    before = {k: v.clone() for k, v in m.state_dict().items()}
    check_model(m, (1, 8, 8), 3)
    assert [mod.training for mod in m.modules()] == [True, True, True, True, False, True]
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # eval mode: BN stats untouched
    assert all(p.grad is None for p in m.parameters())
    with pytest.raises(
        ModelError, match=r"model 'Sequential' returned shape \(2, 3\) for a batch of 2, expected \(B, 4\)"
    ):
        check_model(m, (1, 8, 8), 4)
    with pytest.raises(ModelError, match=r"fails on a batch of shape \(2, 3, 8, 8\)"):
        check_model(m, (3, 8, 8), 3)
    assert [mod.training for mod in m.modules()] == [True, True, True, True, False, True]  # also after it raised
    check_model(build_model(ModelSpec("tiny-cnn", 1, 3, (8, 8))), (1, 8, 8), 3)  # the zoo passes
