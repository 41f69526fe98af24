"""torchrun / DistributedDataParallel: shards, gathers, and the commands run by 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from mintaudit import distributed

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _torchrun_skip_reason() -> str | None:
    import torch.distributed as dist

    if not dist.is_available():
        return "this PyTorch build has no torch.distributed"
    if not dist.is_gloo_available():
        return "this PyTorch build has no gloo backend"
    if not TORCHRUN.is_file():
        return f"no torchrun next to {sys.executable}"
    return None


needs_torchrun = pytest.mark.skipif(_torchrun_skip_reason() is not None, reason=str(_torchrun_skip_reason()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``torchrun --nproc-per-node 2 ARGS`` on CPU, one thread per process; fail with its output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [
        str(TORCHRUN),
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        *args,
    ]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"torchrun failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.mark.parametrize("n", [0, 1, 2, 7, 10, 129])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_cover_every_position_once_with_equal_lengths(n, world):
    parts = [distributed.shard(n, rank=r, world_size=world) for r in range(world)]
    assert len({p.positions.size for p in parts}) == 1  # the same number of steps on every rank
    real = np.concatenate([p.positions[p.valid] for p in parts])
    assert sorted(real.tolist()) == list(range(n))  # padding dropped: each position exactly once
    padded = np.concatenate([p.positions[~p.valid] for p in parts])
    assert padded.size == parts[0].positions.size * world - n
    # rank r's l-th slot is position l * world + r: interleaving the ranks restores the order
    slots = np.stack([p.positions for p in parts], 1).reshape(-1)[:n]
    assert slots.tolist() == list(range(n))


def test_one_rank_is_the_identity_and_row_ranges_tile():
    part = distributed.shard(5)
    assert part.positions.tolist() == [0, 1, 2, 3, 4] and part.valid.all()
    assert distributed.gather(np.arange(5) * 2, part).tolist() == [0, 2, 4, 6, 8]
    assert distributed.map_shards(lambda ix: ix + 1, np.arange(3)).tolist() == [1, 2, 3]
    assert [distributed.row_range(7, rank=r, world_size=3) for r in range(3)] == [(0, 2), (2, 4), (4, 7)]
    assert not distributed.is_active() and distributed.is_main() and distributed.world_size() == 1


def test_bad_rank_refused():
    from mintaudit.errors import ConfigError

    with pytest.raises(ConfigError, match="rank must lie"):
        distributed.shard(4, rank=2, world_size=2)


@pytest.mark.parametrize("as_stored", [False, True])
@pytest.mark.parametrize("write_bytes", [1, 40, 10**6])
def test_cache_rows_land_at_their_place_whatever_the_blocks(tmp_path, monkeypatch, write_bytes, as_stored):
    from mintaudit.signals import writer as cache

    monkeypatch.setattr(cache, "_WRITE_BYTES", write_bytes)  # every row alone, a few rows, or all at once
    data = np.arange(13 * 2 * 3, dtype=np.float32).reshape(13, 2, 3)
    cache._create_npy(tmp_path / "a.npy", np.dtype(np.float16), data.shape)
    for start, stop in [(0, 6), (6, 13)]:  # two ranks' blocks, written in batches of 4
        writer = cache._CacheWriter(tmp_path, ["a.npy"], start, stop)
        try:
            for b in range(start, stop, 4):
                block = data[b : min(b + 4, stop)]
                # as stored (C-ordered float16: may go out without a copy), or float32 in another memory order
                block = block.astype(np.float16) if as_stored else block.transpose(0, 2, 1).copy().transpose(0, 2, 1)
                writer.submit({"a.npy": block}, b)
        finally:
            writer.close()
    out = np.load(tmp_path / "a.npy")
    assert out.dtype == np.float16 and np.array_equal(out, data.astype(np.float16))


def test_device_choice_is_checked():
    from mintaudit._tensor import resolve_device, use_device
    from mintaudit.errors import ConfigError

    assert resolve_device(None) == torch.device("cpu")
    with use_device("cpu"):
        assert resolve_device(None, torch.nn.Linear(1, 1)) == torch.device("cpu")
    with pytest.raises(ConfigError, match="cpu, cuda or cuda:N"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_device_cuda_without_a_gpu_says_so(tmp_path, capsys):
    from mintaudit.cli import main

    assert main(["train", "--device", "cuda", "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


_SCRIPT = """
import json, sys
import numpy as np, torch
from mintaudit import distributed
from mintaudit.active import ActiveConfig, ActiveModel, train_active
from mintaudit.data import load_dataset
from mintaudit.models import TinyCNN, model_fingerprint
from mintaudit.training import TrainConfig, accuracy, train_classifier

torch.set_num_threads(1)
assert distributed.init() and distributed.world_size() == 2
r = distributed.rank()
items = np.arange(100, 107)  # 7 items on 2 ranks: one padded slot
out = {
    "map": distributed.map_shards(lambda ix: ix * 10, items).tolist(),
    "gather": distributed.gather(torch.tensor(distributed.shard(7).positions), distributed.shard(7)).tolist(),
    "lengths": [len(a) for a in distributed.all_gather(np.zeros(r + 2))],
    "sum": distributed.all_reduce_sum([1.0, r]).tolist(),
}
ds = load_dataset("digits")
torch.manual_seed(r)  # different initial weights on purpose: DDP starts every rank from rank 0's
net = TinyCNN(1, 10)
res = train_classifier(net, ds, np.arange(101), TrainConfig(epochs=1, batch_size=16), test_indices=np.arange(200, 251))
out["plain"] = [model_fingerprint(net), res.history, res.test_accuracy]
# the gathered accuracies are those of one process over all samples, each counted once
out["gathered"] = [res.train_accuracy == accuracy(net, ds, np.arange(101)),
                   res.test_accuracy == accuracy(net, ds, np.arange(200, 251))]
torch.manual_seed(r)
amodel = ActiveModel(TinyCNN(1, 10), ["relu1", "relu2"], example=torch.zeros(2, 1, 8, 8))
ares = train_active(amodel, ds, np.arange(61), np.arange(300, 400), val_members=np.arange(0, 61, 2),
                    val_external=np.arange(400, 433), config=ActiveConfig(epochs=2, batch_size=8, patience=0))
out["active"] = [model_fingerprint(amodel), ares.history, ares.threshold]
json.dump(out, open(f"{sys.argv[1]}/rank{r}.json", "w"))
distributed.shutdown()
"""


@pytest.mark.slow
@needs_torchrun
def test_helpers_and_training_give_the_same_state_on_every_rank(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    _torchrun([str(script), str(tmp_path)], cwd=tmp_path)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for res in ranks:
        assert res["map"] == [1000, 1010, 1020, 1030, 1040, 1050, 1060]
        assert res["gather"] == list(range(7))
        assert res["lengths"] == [2, 3]
        assert res["sum"] == [2.0, 1.0]
        assert res["gathered"] == [True, True]
    # one model, one history, one threshold: the same on both ranks
    assert ranks[0]["plain"] == ranks[1]["plain"]
    assert ranks[0]["active"] == ranks[1]["active"]
    assert len(ranks[0]["active"][1]) == 2 and 0 <= ranks[0]["plain"][2] <= 1


@pytest.mark.slow
@needs_torchrun
def test_train_then_extract_under_torchrun_equals_one_process(tmp_path):
    from mintaudit.data import Splits, load_dataset
    from mintaudit.models import load_model
    from mintaudit.workdir import resolve_taps
    from mintaudit.signals import SignalCache, extract_signals

    out = tmp_path / "run"
    cli = ["-m", "mintaudit.cli"]
    done = _torchrun(
        [
            *cli,
            "train",
            "--dataset",
            "digits",
            "--members",
            "151",
            "--external",
            "100",
            "--test",
            "50",
            "--model",
            "tiny-cnn",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
    )
    assert done.stdout.count("trained tiny-cnn") == 1  # rank 0 prints, rank 1 is quiet
    net, spec, info = load_model(out / "model")  # loads in one process
    assert len(info["history"]) == 1 and (out / "model" / "checkpoint.pt").is_file()
    _torchrun([*cli, "extract", "--dataset", "digits", "--taps", "all", "--quiet", "--out", str(out)], cwd=tmp_path)

    ds = load_dataset("digits")
    splits = Splits.load(out / "splits.json", dataset=ds)
    idx = np.unique(np.concatenate([splits.members, splits.external, splits.test]))
    assert len(idx) % 2 == 1  # not divisible by the 2 ranks
    layers = [layer for _, layer in resolve_taps(net, spec.name, "all")]
    single = extract_signals(net, ds, idx, layers, tmp_path / "single")
    [manifest] = list((out / "cache").glob("*/manifest.json"))
    shared = SignalCache.open(manifest.parent)
    assert shared.path.name == single.path.name and shared.manifest == single.manifest
    assert np.array_equal(shared.indices, single.indices)
    for layer in layers:
        assert np.array_equal(np.asarray(shared.activations(layer)), np.asarray(single.activations(layer))), layer
    for key, value in single.outputs().items():
        assert np.array_equal(shared.outputs()[key], value), key
    assert not [p for p in (out / "cache").iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.slow
@needs_torchrun
def test_active_train_under_torchrun_delivers_a_model_that_loads(tmp_path):
    from mintaudit.active import load_active
    from mintaudit.data import load_dataset

    out = tmp_path / "amint"
    _torchrun(
        [
            "-m",
            "mintaudit.cli",
            "active",
            "train",
            "--dataset",
            "digits",
            "--members",
            "200",
            "--external",
            "300",
            "--test",
            "200",
            "--epochs",
            "1",
            "--no-plain",
            "--quiet",
            "--bootstrap",
            "20",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
    )
    model, meta = load_active(out / "amint" / "middle")
    ckpt = torch.load(out / "checkpoints" / "amint-middle" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1
    model.load_state_dict(ckpt["best_model"])  # the checkpoint fits the delivered model
    ds = load_dataset("digits")
    from mintaudit._tensor import to_tensor

    with torch.no_grad():
        logits, membership = model(to_tensor(ds.images[:4]))
    assert logits.shape == (4, ds.num_classes) and torch.isfinite(membership).all()
    assert 0.0 <= meta["threshold"] <= 1.0
    report = json.loads((out / "report.json").read_text())
    assert [r["method"] for r in report["results"]] == ["amint"]


# task-parallel reference models: model r trained by rank r % world size, the same as one process


def test_tasks_go_to_rank_t_mod_world_size():
    shares = [distributed.own_tasks(range(7), rank=k, world_size=3) for k in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert distributed.own_tasks([1, 5], rank=0, world_size=2) == []  # cached ones left out: no one else takes them
    from mintaudit.errors import ConfigError

    with pytest.raises(ConfigError, match="rank must lie"):
        distributed.own_tasks([0], rank=2, world_size=2)


def test_share_tasks_in_one_process_runs_all_in_order_alone():
    seen = []

    def run(t):
        seen.append((t, distributed.is_active(), distributed.rank(), distributed.world_size()))

    assert distributed.share_tasks([2, 0, 5], run) == [[2, 0, 5]]
    assert seen == [(2, False, 0, 1), (0, False, 0, 1), (5, False, 0, 1)]

    def fail(t):
        raise ValueError(f"task {t} broke")

    with pytest.raises(ValueError, match="task 1 broke"):  # the task's own error, not a wrapped one
        distributed.share_tasks([1, 2], fail)


_REFERENCE_SCRIPT = """
import json, sys
import numpy as np, torch
from pathlib import Path
from mintaudit import distributed
from mintaudit.attacks import train_reference_models
from mintaudit.attacks.trainers import ReferenceTrainer
from mintaudit.cli import main
from mintaudit.data import load_dataset
from mintaudit.models import ModelSpec, model_fingerprint
from mintaudit.training import TrainConfig

torch.set_num_threads(1)
assert distributed.init() and distributed.world_size() == 2
out = Path(sys.argv[1])
ds = load_dataset("digits")
spec = ModelSpec("tiny-cnn", 1, 10, (8, 8))
cfg = TrainConfig(epochs=1, batch_size=32, augment=True)  # augmentation seeds are rank-free inside a task
refs = train_reference_models(spec, ds, np.arange(300, 500), 4, cfg, out / "refs", show_progress=True)
got = {"fingerprints": [model_fingerprint(m) for m in refs.models]}

def recipe(model, loader):  # fails for reference model 1 (seed 1), i.e. on rank 1 only
    if torch.initial_seed() == 1:
        raise RuntimeError("no GPU for this one")
    return model

try:
    train_reference_models(spec, ds, np.arange(300, 500), 2, cfg, out / "broken",
                           trainer=ReferenceTrainer.of(recipe, version="1"))
except Exception as e:
    got["error"] = [type(e).__name__, str(e)]
json.dump(got, open(out / f"rank{distributed.rank()}.json", "w"))
# the command line: mintaudit attack in the work directory given (it leaves the process group at the end)
sys.exit(main(sys.argv[2:]))
"""


def _attack_args(out: Path) -> list[str]:
    return [
        "attack",
        "--dataset",
        "digits",
        "--methods",
        "lira,rmia",
        "--reference",
        "4",
        "--reference-epochs",
        "1",
        "--bootstrap",
        "50",
        "--allow-weak-model",
        "--quiet",
        "--out",
        str(out),
    ]


@pytest.mark.slow
@needs_torchrun
def test_reference_models_under_torchrun_are_shared_out_and_equal_one_process(tmp_path):
    """One torchrun launch (2 gloo ranks): train_reference_models, a failing recipe, then 'mintaudit attack'."""
    import shutil

    from mintaudit.attacks import train_reference_models
    from mintaudit.cli import main
    from mintaudit.data import load_dataset
    from mintaudit.models import ModelSpec, load_model, model_fingerprint
    from mintaudit.training import TrainConfig

    one, two = tmp_path / "one", tmp_path / "two"
    train = ["train", "--dataset", "digits", "--members", "200", "--external", "300", "--test", "200"]
    assert main([*train, "--model", "tiny-cnn", "--epochs", "4", "--quiet", "--out", str(one)]) == 0
    shutil.copytree(one, two, symlinks=True)
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(_REFERENCE_SCRIPT))
    done = _torchrun([str(script), str(tmp_path), *_attack_args(two)], cwd=tmp_path)
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(2)]

    # the Python path: the progress line, printed once (rank 0)
    assert done.stderr.count("reference models in") == 1, done.stderr[-2000:]
    assert "rank 0 trained 0, 2; rank 1 trained 1, 3 (0 of 4 were cached)" in done.stderr
    assert ranks[0]["fingerprints"] == ranks[1]["fingerprints"]  # every rank reads all four
    # each model's files were written by rank r % 2
    folders = sorted((tmp_path / "refs").iterdir())
    assert len(folders) == 4 and not [p for p in folders if p.name.startswith(".")]
    by_index = {}
    for folder in folders:
        about = json.loads((folder / "model.json").read_text())
        assert about["trained_by"] == {"rank": about["reference_index"] % 2, "world_size": 2}
        by_index[about["reference_index"]] = folder
    # one process, a fresh cache: the same weights, bit for bit, under the same cache keys
    ds = load_dataset("digits")
    spec = ModelSpec("tiny-cnn", 1, 10, (8, 8))
    cfg = TrainConfig(epochs=1, batch_size=32, augment=True)
    single = train_reference_models(spec, ds, np.arange(300, 500), 4, cfg, tmp_path / "one-refs", show_progress=False)
    assert [model_fingerprint(m) for m in single.models] == ranks[0]["fingerprints"]
    for r, model in enumerate(single.models):
        cached, _, _ = load_model(by_index[r])
        for (name, a), (_, b) in zip(model.state_dict().items(), cached.state_dict().items()):
            assert torch.equal(a, b), (r, name)
    assert sorted(p.name for p in (tmp_path / "one-refs").iterdir()) == [p.name for p in folders]
    # an error on rank 1 reaches rank 0 as one message instead of a hang
    assert ranks[1]["error"][0] == "ModelError" and "no GPU for this one" in ranks[1]["error"][1]
    assert ranks[0]["error"][0] == "MintauditError"
    assert ranks[0]["error"][1].startswith("rank 1 failed on its share of the tasks: ModelError: trainer")
    assert "no GPU for this one" in ranks[0]["error"][1]

    # the command line: the report of one process, to the last bit
    assert main(_attack_args(one)) == 0

    def rows(out: Path) -> dict[str, dict]:
        report = json.loads((out / "report.json").read_text())
        return {r["attack"]: {k: v for k, v in r.items() if k != "fit"} for r in report["results"] if "attack" in r}

    got, want = rows(two), rows(one)
    assert sorted(want) == ["lira", "rmia"] and got == want  # metrics and intervals of the same scores

    def weights(out: Path) -> dict[str, bytes]:
        files = sorted((out / "cache" / "attacks" / "reference").rglob("model.safetensors"))
        return {str(p.relative_to(out)): p.read_bytes() for p in files}

    assert len(weights(two)) == 4 and weights(two) == weights(one)
    models = (two / "cache" / "attacks").rglob("model.json")
    assert sorted(json.loads(p.read_text())["trained_by"]["rank"] for p in models) == [0, 0, 1, 1]
