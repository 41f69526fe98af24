"""Where an audit runs: ``device=`` on mintaudit.audit and MintDetector; collectives only when asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

import mintaudit
from mintaudit.data import load_dataset
from mintaudit.detectors import DetectorConfig, MintDetector
from mintaudit.errors import ConfigError

FAST = {"fusion": "outputs", "n_bootstrap": 20, "detector": DetectorConfig(epochs=2), "show_progress": False}


@pytest.fixture(scope="module")
def digits():
    """A small MLP trained on 300 digits (x / 255), and the three roles as (x, y) pairs."""
    torch.manual_seed(0)
    ds = load_dataset("digits")
    order = np.random.default_rng(0).permutation(len(ds))
    x = torch.from_numpy(ds.images).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(ds.labels)
    idx = {"members": np.sort(order[:300]), "external": order[300:600], "test": order[600:900]}
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(60):
        loss = nn.functional.cross_entropy(net(x[idx["members"]]), y[idx["members"]])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    return net, {role: (x[i], y[i]) for role, i in idx.items()}


def _rows(result):
    return [(r.method, r.signal, r.layer, r.metrics["auc"], r.metrics["accuracy"]) for r in result.rows]


def _xy():
    X = np.random.default_rng(0).normal(size=(160, 6)).astype("float32")
    return X, (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)


def test_a_detector_on_the_cpu_is_the_default_one():
    X, y = _xy()
    default = MintDetector(epochs=3, seed=1).fit(X, y)
    on_cpu = MintDetector(epochs=3, seed=1, device="cpu").fit(X, y)
    assert on_cpu.get_params()["device"] == "cpu" and clone(on_cpu).get_params()["device"] == "cpu"
    assert {p.device.type for p in on_cpu.net_.parameters()} == {"cpu"}
    np.testing.assert_array_equal(on_cpu.decision_function(X), default.decision_function(X))
    assert MintDetector.from_config(DetectorConfig(), device="cpu").device == "cpu"


def test_a_detector_refuses_an_unknown_device_in_one_line():
    X, y = _xy()
    det = MintDetector(epochs=3, device="tpu")
    with pytest.raises(ConfigError) as e:
        det.fit(X, y)
    assert "tpu" in str(e.value) and "\n" not in str(e.value)
    assert not hasattr(det, "net_")  # nothing fitted-looking left behind


def test_audit_on_the_cpu_gives_the_default_audit(digits):
    net, roles = digits
    assert _rows(mintaudit.audit(net, **roles, device="cpu", **FAST)) == _rows(mintaudit.audit(net, **roles, **FAST))


def test_audit_refuses_an_unknown_device_before_reading_the_data(digits):
    net, _ = digits
    with pytest.raises(ConfigError, match="tpu") as e:  # the sets are not even readable: the device is checked first
        mintaudit.audit(net, members=object(), external=object(), test=object(), device="tpu")
    assert "\n" not in str(e.value)


def test_distributed_true_without_a_process_group_is_refused(digits):
    net, roles = digits
    with pytest.raises(ConfigError, match="process group") as e:
        mintaudit.audit(net, **roles, distributed=True, **FAST)
    assert "\n" not in str(e.value)


_RANK = """
import json, sys
import numpy as np, torch, torch.distributed as dist
from torch import nn
import mintaudit
from mintaudit.data import load_dataset
from mintaudit.detectors import DetectorConfig

torch.set_num_threads(1)
rank, folder = int(sys.argv[1]), sys.argv[2]
dist.init_process_group("gloo", store=dist.FileStore(folder + "/store", 2), rank=rank, world_size=2)  # the user's
calls = []
for name in ("all_reduce", "all_gather", "all_gather_object", "all_gather_into_tensor", "broadcast",
             "broadcast_object_list", "gather", "reduce", "scatter", "barrier"):
    def spy(*args, _f=getattr(dist, name), _name=name, **kwargs):
        calls.append(_name)
        return _f(*args, **kwargs)
    setattr(dist, name, spy)
torch.manual_seed(0)
ds = load_dataset("digits")
order = np.random.default_rng(0).permutation(len(ds))
x, y = torch.from_numpy(ds.images).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(ds.labels)
idx = {"members": np.sort(order[:200]), "external": order[200:400], "test": order[400:600]}
net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
opt = torch.optim.Adam(net.parameters(), 1e-2)
for _ in range(40):
    loss = nn.functional.cross_entropy(net(x[idx["members"]]), y[idx["members"]])
    opt.zero_grad(); loss.backward(); opt.step()
net.eval()
roles = {role: (x[i], y[i]) for role, i in idx.items()}
fast = dict(fusion="outputs", n_bootstrap=20, detector=DetectorConfig(epochs=2), show_progress=False)
rows = lambda r: [[row.method, row.layer, row.metrics["auc"]] for row in r.rows]
alone = rows(mintaudit.audit(net, **roles, **fast))
calls_alone = list(calls)
together = rows(mintaudit.audit(net, **roles, distributed=True, **fast))
json.dump({"alone": alone, "calls_alone": calls_alone, "together": together, "calls_together": calls[len(calls_alone):]},
          open(f"{folder}/rank{rank}.json", "w"))
dist.destroy_process_group()
"""


@pytest.mark.slow  # two processes, each trains a small MLP and audits it twice (about a minute on 2 busy cores)
@pytest.mark.skipif(not torch.distributed.is_available(), reason="this PyTorch build has no torch.distributed")
def test_a_library_call_under_the_users_own_process_group_runs_no_collective(tmp_path):
    """Two ranks of the user's own gloo group: audit() computes alone on each; distributed=True shares the work."""
    script = tmp_path / "rank.py"
    script.write_text(textwrap.dedent(_RANK))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)  # no torchrun: the group is the script's own
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), str(tmp_path)], env=env, stderr=subprocess.PIPE, text=True
        )
        for r in range(2)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-3000:] for e in errors)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for res in ranks:
        assert res["calls_alone"] == []  # main: the extraction and the gate gathered over the user's group
        assert res["calls_together"]  # the same spies do see mintaudit's collectives when it is asked
        assert res["together"] == res["alone"]  # each rank's share, gathered: the one-process audit
    assert ranks[0]["alone"] == ranks[1]["alone"]
