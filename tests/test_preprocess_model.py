"""Preprocess grows resize, crop, resample, channel order and rescale; old records keep their bytes and meaning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mintaudit.errors import ConfigError
from mintaudit.preprocess import DEFAULT_PREPROCESS, Preprocess
from mintaudit.targets.resolve import resolve_preprocess


def test_old_records_keep_their_bytes_keys_and_meaning():
    old = {"mean": [0.0], "std": [1.0], "grey_to_rgb": False}
    p = Preprocess.from_dict(old)
    assert json.dumps(p.to_dict()) == json.dumps(old)
    assert p.key() == "mean=0.0;std=1.0;rgb=0"
    assert DEFAULT_PREPROCESS.to_dict() == {"mean": [0.5], "std": [0.5], "grey_to_rgb": False}
    assert DEFAULT_PREPROCESS.key() == "mean=0.5;std=0.5;rgb=0"
    x = np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1)
    torch.testing.assert_close(DEFAULT_PREPROCESS(x), torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1)


def test_new_fields_round_trip_and_change_the_key():
    p = Preprocess(mean=0.2, std=0.3, resize=(6,), crop=(4, 4), resample="nearest", channel_order="bgr", rescale=1.0)
    assert Preprocess.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert p.key() != Preprocess(mean=0.2, std=0.3).key()
    assert p.output_size(8, 16) == (4, 4) and Preprocess(resize=(6,)).output_size(8, 16) == (6, 12)


def test_resize_crop_and_channel_order_act_on_the_pixels():
    x = np.zeros((1, 4, 4, 3), np.uint8)
    x[..., 0] = 255  # red
    bgr = Preprocess(mean=0, std=1, channel_order="bgr")(x)
    assert bgr[0, 2].min() == 1 and bgr[0, 0].max() == 0
    up = Preprocess(mean=0, std=1, resize=(8, 8), resample="nearest")(x)
    assert up.shape == (1, 3, 8, 8) and up[0, 0].min() == 1
    g = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1) * 10
    crop = Preprocess(mean=0, std=1, crop=(2, 2), rescale=1.0)(g)
    torch.testing.assert_close(crop[0, 0], torch.tensor([[50.0, 60.0], [90.0, 100.0]]))
    with pytest.raises(ConfigError, match="larger than the image"):
        Preprocess(crop=(5, 5))(g)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"resize": (0, 4)}, "resize takes"),
        ({"crop": (4,)}, "crop takes"),
        ({"resample": "lanczos"}, "resample must be one of"),
        ({"channel_order": "gbr"}, "channel_order"),
        ({"rescale": 0}, "rescale must be"),
    ],
)
def test_bad_new_fields_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        Preprocess(**kw)


def test_declared_preprocessing_wins_and_a_contradicting_flag_is_refused_naming_both():
    declared = Preprocess(mean=(0.3,), std=(0.35,), resize=(12, 12))
    assert resolve_preprocess(declared, None) is declared
    assert resolve_preprocess(None, Preprocess(mean=0, std=1)) == Preprocess(mean=0, std=1)
    assert resolve_preprocess(None, None) is None
    assert resolve_preprocess(declared, Preprocess(mean=0.3, std=0.35)) is declared  # agreeing flags are fine
    with pytest.raises(ConfigError, match=r"--mean 0.5 --std 0.5 but hf:x declares --mean 0.3 --std 0.35"):
        resolve_preprocess(declared, DEFAULT_PREPROCESS, source="hf:x")
    raw = Preprocess(mean=127.5, std=127.5, rescale=1.0)  # do_rescale false: mean/std on 0-255 values
    assert resolve_preprocess(raw, Preprocess(mean=0.5, std=0.5)) is raw
