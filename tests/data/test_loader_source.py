"""A user's DataLoader as a source (issue 27): read by position, fingerprinted from 64 samples, streamed.

LoaderSource reads ``loader.dataset`` by position with the loader's batching (its sampler ignored);
its fingerprint is the length plus 64 seeded samples; a random transform is refused; an iterable
dataset is streamed once in order; ``mintaudit.audit`` on DataLoaders scores exactly as on tensors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

import mintaudit
from mintaudit.attacks.run import _flip_dataset
from mintaudit.data import load_dataset
from mintaudit.data.source import IterableSource, LoaderSource, TensorSource
from mintaudit.data.sourcepool import pool_of
from mintaudit.detectors import DetectorConfig
from mintaudit.errors import DataError
from mintaudit.protocols import Source

FAST = {"fusion": "outputs", "n_bootstrap": 20, "detector": DetectorConfig(epochs=2), "show_progress": False}


@pytest.fixture(scope="module")
def digits():
    """900 digits as the model's inputs (x / 255, float32 (N, 1, 8, 8)) and an MLP trained on the first 300."""
    ds = load_dataset("digits")
    order = np.random.default_rng(0).permutation(len(ds))[:900]
    x = torch.from_numpy(ds.images[order]).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(ds.labels[order])
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(60):
        loss = nn.functional.cross_entropy(net(x[:300]), y[:300])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval(), x, y


class _Dicts(Dataset):
    """Hugging Face style samples: {"pixel_values": (C, H, W), "labels": int}."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": int(self.y[i])}


def _hf_collate(items):
    """What a transformers Trainer-style collate function returns: a dict of stacked tensors."""
    return {
        "pixel_values": torch.stack([d["pixel_values"] for d in items]),
        "labels": torch.tensor([d["labels"] for d in items]),
    }


class _Noisy(Dataset):
    """An augmenting dataset: each read adds fresh noise."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + 0.01 * torch.randn_like(self.x[i]), int(self.y[i])


class _Stream(IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        for i in range(0, len(self.x), 7):
            yield self.x[i : i + 7], self.y[i : i + 7]


def test_the_fingerprint_follows_the_data_not_the_loader(digits):
    _, x, y = digits
    a = LoaderSource.of(DataLoader(TensorDataset(x[:50], y[:50]), batch_size=8), "members")
    b = LoaderSource.of(DataLoader(TensorDataset(x[:50].clone(), y[:50].clone()), batch_size=13, shuffle=True))
    assert a.fingerprint() == b.fingerprint()
    changed = x[:50].clone()
    changed[17, 0, 3, 3] += 0.5
    assert LoaderSource.of(DataLoader(TensorDataset(changed, y[:50]), batch_size=8)).fingerprint() != a.fingerprint()
    relabelled = y[:50].clone()
    relabelled[3] = (relabelled[3] + 1) % 10
    assert LoaderSource.of(DataLoader(TensorDataset(x[:50], relabelled))).fingerprint() != a.fingerprint()
    # a larger set: 64 seeded samples are read; one of them changed changes the key, so does the length
    big = LoaderSource(TensorDataset(x, y))
    seen = np.sort(np.random.default_rng(0).choice(len(x), size=64, replace=False))
    moved = x.clone()
    moved[seen[5]] += 0.25
    assert LoaderSource(TensorDataset(moved, y)).fingerprint() != big.fingerprint()
    assert LoaderSource(TensorDataset(x[:-1], y[:-1])).fingerprint() != big.fingerprint()


def test_batches_read_positions_with_the_loaders_batching_and_ignore_its_sampler(digits):
    _, x, y = digits
    sizes = []

    def collate(items):
        sizes.append(len(items))
        return _hf_collate(items)

    loader = DataLoader(_Dicts(x[:40], y[:40]), batch_size=16, shuffle=True, collate_fn=collate)
    src = LoaderSource.of(loader, "members")
    ids = np.array([39, 0, 5, 6, 7, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33])
    got = list(src.batches(ids))
    assert sizes == [16, 3] and [len(b[0]) for b in got] == [16, 3]
    assert torch.equal(torch.cat([b[0] for b in got]), x[ids]) and torch.equal(torch.cat([b[1] for b in got]), y[ids])
    assert np.array_equal(src.labels, y[:40].numpy())
    assert isinstance(src, Source) and isinstance(TensorSource(x, y), Source)
    # the DataLoader's workers read the same samples, in the order asked
    workers = LoaderSource(TensorDataset(x[:40], y[:40]), batch_size=8, num_workers=1)
    streamed = torch.cat([b for b, _ in workers.batches(ids)])
    assert torch.equal(streamed, x[ids])


def test_a_random_transform_is_refused_in_one_line(digits):
    net, x, y = digits
    src = LoaderSource.of(DataLoader(_Noisy(x[:50], y[:50]), batch_size=8), "external")
    with pytest.raises(DataError) as e:
        src.fingerprint()
    text = str(e.value)
    assert (
        text.startswith("external: the same samples read twice differ") and "pass a loader without augmentation" in text
    )
    assert "\n" not in text
    with pytest.raises(DataError, match="external: the same samples read twice differ"):
        mintaudit.audit(
            net,
            members=(x[:300], y[:300]),
            external=DataLoader(_Noisy(x[300:600], y[300:600]), batch_size=64),
            test=(x[600:], y[600:]),
            **FAST,
        )


def test_an_iterable_dataset_is_streamed_once_in_order_and_random_access_refused(digits):
    _, x, y = digits
    src = IterableSource(DataLoader(_Stream(x[:30], y[:30]), batch_size=None), "test")
    with pytest.raises(DataError, match=r"test: len\(\) before the one pass needs random access"):
        len(src)
    with pytest.raises(DataError, match=r"test: batches\(ids\) in another order than 0..n-1 needs random access"):
        next(src.batches(np.array([3, 1, 2])))
    got = list(src.batches(np.arange(30)))
    assert [len(b) for b, _ in got] == [7, 7, 7, 7, 2]
    assert torch.equal(torch.cat([b for b, _ in got]), x[:30]) and np.array_equal(src.labels, y[:30].numpy())
    assert len(src) == 30
    with pytest.raises(DataError, match=r"test: a second pass of batches\(ids\) needs random access"):
        next(src.batches(np.arange(30)))
    for call, method in ((src.fingerprint, "fingerprint()"), (lambda: src.fetch(np.arange(2)), "fetch(ids)")):
        with pytest.raises(DataError) as e:
            call()
        assert f"test: {method}" in str(e.value) and "streamed once, in order" in str(e.value)


def test_the_pool_streams_across_its_parts_as_it_reads_them_at_random(digits):
    _, x, y = digits
    parts = [
        LoaderSource(TensorDataset(x[:20], y[:20]), batch_size=6),
        TensorSource(x[20:45], y[20:45]),
        LoaderSource(_Dicts(x[45:60], y[45:60]), batch_size=4, collate_fn=_hf_collate),
    ]
    pool = pool_of("p", parts, y[:60].numpy(), 10)
    assert pool.image_shape == (1, 8, 8) and len(pool) == 60
    for ids in (np.arange(60), np.r_[3:50], np.random.default_rng(1).permutation(60)):
        batches = list(pool.stream(ids, 16))
        assert [len(i) for _, _, i in batches] == [len(ids[s : s + 16]) for s in range(0, len(ids), 16)]
        assert torch.equal(torch.cat([b for b, _, _ in batches]), x[ids])
        assert torch.equal(torch.cat([t for _, t, _ in batches]), y[ids])
        assert np.array_equal(np.concatenate([i for _, _, i in batches]), ids)
        assert torch.equal(pool.batch(ids), x[ids])
    # LiRA's flip mirrors the model inputs left-right (the last axis), and is another pool for the cache
    flipped = _flip_dataset(pool)
    assert torch.equal(flipped.batch(np.arange(60)), x[:60].flip(-1))
    assert flipped.fingerprint() != pool.fingerprint()


def test_audit_on_dataloaders_scores_as_on_tensors(digits):
    net, x, y = digits
    roles = {"members": slice(0, 300), "external": slice(300, 600), "test": slice(600, 900)}
    as_tensors = mintaudit.audit(net, **{r: (x[s], y[s]) for r, s in roles.items()}, taps=["1"], **FAST)
    as_loaders = mintaudit.audit(
        net,
        members=DataLoader(_Dicts(x[:300], y[:300]), batch_size=32, shuffle=True, collate_fn=_hf_collate),
        external=DataLoader(TensorDataset(x[300:600], y[300:600]), batch_size=50),
        test=_Dicts(x[600:], y[600:]),  # a map-style Dataset of dict samples, batched by audit()
        taps=["1"],
        **FAST,
    )
    rows = [(r.method, r.signal, r.layer, r.metrics) for r in as_tensors.rows]
    assert rows and rows == [(r.method, r.signal, r.layer, r.metrics) for r in as_loaders.rows]
    assert as_loaders.report["dataset"]["members"] == 300
