import pytest
import torch
from torch import nn

from mintaudit.errors import ConfigError, LayerNotFoundError
from mintaudit.models import ObjClsCNN, TinyCNN
from mintaudit.taps import Recorder, list_layers, select_layers


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class HandSet(nn.Module):
    """Hand-set weights so activations can be asserted exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.out = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.0]]))
            self.out.weight.copy_(torch.tensor([[1.0, 1.0]]))

    def forward(self, x):
        return self.out(self.relu(self.lin(x)))


class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        seq, _ = self.rnn(x)
        return self.fc(seq[:, -1])


class Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(2, 2)
        self.b = nn.Linear(2, 2)

    def forward(self, x):
        self.a(x)
        raise RuntimeError("boom")


def test_exact_activations_and_inplace_relu_copy():
    m = HandSet()
    x = torch.tensor([[1.0, 3.0]])
    with Recorder(m, ["lin", "relu"]) as rec:
        m(x)
        acts = rec.pop()
    # lin -> [1-3, 2] = [-2, 2]; the in-place ReLU must not have changed the recorded lin output
    assert torch.equal(acts["lin"], torch.tensor([[-2.0, 2.0]]))
    assert torch.equal(acts["relu"], torch.tensor([[0.0, 2.0]]))


def test_outputs_identical_with_and_without_recorder():
    m = ObjClsCNN(1, 10, 28).eval()
    x = torch.randn(4, 1, 28, 28)
    ref = m(x)
    with Recorder(m, select_layers(m, "all")) as rec:
        hooked = m(x)
        assert len(rec.pop()) == len(select_layers(m, "all"))
    assert torch.equal(ref, hooked)
    assert torch.equal(ref, m(x))


def test_no_hooks_left_also_when_forward_raises():
    m = Exploding()
    before = _hook_count(m)
    with pytest.raises(RuntimeError, match="boom"), Recorder(m, ["a", "b"]):
        m(torch.zeros(1, 2))
    assert _hook_count(m) == before
    assert not any(k.startswith("_mint") for k in vars(m))
    # the model can be hooked again afterwards
    with Recorder(m, ["a"]):
        pass


def test_no_hooks_left_after_normal_use_and_nothing_written_on_model():
    m = TinyCNN(1, 3)
    attrs = set(vars(m))
    with Recorder(m, ["relu1", "relu2"]):
        m(torch.zeros(1, 1, 8, 8))
    assert _hook_count(m) == 0
    assert set(vars(m)) == attrs


def test_refuses_hooking_the_same_model_twice():
    m = TinyCNN(1, 3)
    with Recorder(m, ["relu1"]), pytest.raises(ConfigError, match="already hooked"), Recorder(m, ["relu2"]):
        pass
    assert _hook_count(m) == 0


def test_batch_of_one_and_tuple_outputs():
    m = TupleOut()
    with Recorder(m, ["rnn", "fc"]) as rec:
        m(torch.zeros(1, 5, 3))
        acts = rec.pop()
    assert acts["rnn"].shape == (1, 5, 4)  # first tensor of the (output, h_n) tuple
    assert acts["fc"].shape == (1, 2)


def test_select_by_name_index_glob_all():
    m = ObjClsCNN(1, 10, 28)
    assert select_layers(m, "block1.relu1") == ["block1.relu1"]
    assert select_layers(m, 3) == ["block1.relu1"]
    assert select_layers(m, "3") == ["block1.relu1"]
    assert select_layers(m, "block*.relu2") == ["block1.relu2", "block2.relu2", "block3.relu2"]
    assert select_layers(m, ["fc_relu", "block1.relu1", "fc_relu"]) == ["fc_relu", "block1.relu1"]
    everything = select_layers(m, "all")
    assert "block1" not in everything and "block1.conv1" in everything


def test_unknown_layer_names_closest():
    m = ObjClsCNN(1, 10, 28)
    with pytest.raises(LayerNotFoundError, match="Closest: block1.relu1"):
        select_layers(m, "block1.rel1")
    with pytest.raises(LayerNotFoundError, match="out of range"):
        select_layers(m, 999)
    with pytest.raises(LookupError):
        select_layers(m, "nothing*")
    with pytest.raises(LayerNotFoundError):
        with Recorder(m, ["nope"]):
            pass


def test_list_layers_shapes_and_mode_restored():
    m = ObjClsCNN(3, 10, 32).train()
    infos = {i.name: i for i in list_layers(m, torch.zeros(1, 3, 32, 32))}
    assert infos["block1.relu1"].output_shape == (32, 32, 32)
    assert infos["block3.relu2"].output_shape == (128, 8, 8)
    assert infos["fc_relu"].output_shape == (128,)
    assert infos["block1"].type == "container"
    assert m.training
    assert _hook_count(m) == 0
