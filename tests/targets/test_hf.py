"""hf:DIR: a transformers image classifier folder as the audited model (logits, names, both key layouts, refusals)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from mintaudit.errors import ConfigError, ModelError, WeightsError  # noqa: E402
from mintaudit.models import build_model, model_fingerprint  # noqa: E402
from mintaudit.preprocess import Preprocess  # noqa: E402
from mintaudit.targets import open_target  # noqa: E402
from mintaudit.targets.hf import hf_preprocess  # noqa: E402


def _vit(channels: int = 1) -> torch.nn.Module:
    cfg = transformers.ViTConfig(
        image_size=8,
        patch_size=4,
        num_channels=channels,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        num_labels=10,
    )
    return transformers.ViTForImageClassification(cfg).eval()


def _resnet() -> torch.nn.Module:
    cfg = transformers.ResNetConfig(
        num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=10
    )
    return transformers.ResNetForImageClassification(cfg).eval()


def _save(model: torch.nn.Module, path) -> str:
    model.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hf")
    vit, res = _vit(), _resnet()
    return {"vit": (vit, _save(vit, root / "vit")), "resnet": (res, _save(res, root / "res"))}


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_logits_through_the_hf_door_equal_the_eager_model(saved, kind):
    model, path = saved[kind]
    t = open_target(f"hf:{path}", input_shape=(1, 8, 8), num_classes=10)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        want = model(pixel_values=x).logits
        got = t.module(x)
    assert isinstance(got, torch.Tensor) and got.shape == (5, 10)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert t.kind == "hf" and t.preprocess is None  # no preprocessor_config.json
    # the layers keep the model's own names, and a hook on one fires on the real submodule
    names = [n for n, _ in t.module.named_modules()]
    assert names[1:] == [n for n, _ in t.module._hf_model.named_modules()][1:]
    assert t.fingerprint() == model_fingerprint(t.module)


def test_hooks_fire_on_the_real_layers_and_the_model_is_left_alone(saved):
    from mintaudit.taps import select_layers

    _, path = saved["vit"]
    t = open_target(f"hf:{path}", input_shape=(1, 8, 8), num_classes=10)
    inner = t.module._hf_model
    before = set(vars(inner))
    layer = select_layers(t.module, "vit.layernorm")[0]
    seen = []
    h = dict(t.module.named_modules())[layer].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    try:
        t.module(torch.zeros(2, 1, 8, 8))
    finally:
        h.remove()
    assert seen == [torch.Size([2, 5, 16])]
    assert set(vars(inner)) == before


def test_both_key_layouts_load(saved, tmp_path):
    """transformers 5 writes ViT's safetensors under the 4.x names and renames them on load; the module's own names load too."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    model, path = saved["vit"]
    with safe_open(f"{path}/model.safetensors", "pt") as f:
        on_disk = set(f.keys())
    sd = model.state_dict()
    if on_disk == set(sd):
        pytest.skip("this transformers writes ViT under its module names: one layout only")
    other = tmp_path / "vit-new-names"
    other.mkdir()
    (other / "config.json").write_text(open(f"{path}/config.json").read())
    save_file({k: v.contiguous() for k, v in sd.items()}, str(other / "model.safetensors"), metadata={"format": "pt"})
    x = torch.randn(3, 1, 8, 8)
    a = open_target(f"hf:{path}", input_shape=(1, 8, 8), num_classes=10).module(x)
    b = open_target(f"hf:{other}", input_shape=(1, 8, 8), num_classes=10).module(x)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_a_fresh_copy_has_the_architecture_and_new_weights(saved):
    _, path = saved["resnet"]
    t = open_target(f"hf:{path}", input_shape=(1, 8, 8), num_classes=10)
    torch.manual_seed(1)
    fresh = build_model(t.spec)
    assert [n for n, _ in fresh.named_modules()] == [n for n, _ in t.module.named_modules()]
    assert model_fingerprint(fresh) != t.fingerprint()
    assert fresh(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_pickled_weights_remote_code_and_missing_folders_are_refused(saved, tmp_path):
    _, path = saved["resnet"]
    cfg = json.loads(open(f"{path}/config.json").read())
    pkl = tmp_path / "pkl"
    pkl.mkdir()
    (pkl / "config.json").write_text(json.dumps(cfg))
    (pkl / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(WeightsError, match="pytorch_model.bin: a pickle"):
        open_target(f"hf:{pkl}", input_shape=(1, 8, 8), num_classes=10)
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoModel": "x.Y"}}))
    with pytest.raises(ModelError, match="remote code"):
        open_target(f"hf:{remote}", input_shape=(1, 8, 8), num_classes=10)
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "config.json").write_text(json.dumps(cfg))
    (cut / "model.safetensors").write_bytes(open(f"{path}/model.safetensors", "rb").read()[:100])
    with pytest.raises(ModelError, match="cannot load hf:.* as an image classifier"):
        open_target(f"hf:{cut}", input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ModelError, match="is not a folder"):
        open_target(f"hf:{tmp_path / 'nope'}", input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ConfigError, match="--model-arg does not apply"):
        open_target(f"hf:{path}", input_shape=(1, 8, 8), num_classes=10, kwargs={"a": 1})


def _proc(tmp_path, cfg):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(cfg))
    return hf_preprocess(tmp_path, channels=3)


def test_the_preprocessor_config_is_parsed_by_hand(tmp_path):
    vit = {
        "image_processor_type": "ViTImageProcessor",
        "do_resize": True,
        "size": {"height": 12, "width": 12},
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.4, 0.3],
        "image_std": [0.2, 0.2, 0.2],
        "do_center_crop": True,
        "crop_size": {"height": 10, "width": 10},
    }
    p = _proc(tmp_path, vit)
    assert p == Preprocess(
        mean=(0.5, 0.4, 0.3), std=(0.2,) * 3, grey_to_rgb=True, resize=(12, 12), crop=(10, 10), resample="bicubic"
    )
    x = np.full((2, 8, 8, 1), 255, np.uint8)
    out = p(x)
    assert out.shape == (2, 3, 10, 10)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([2.5, 3.0, 3.5]))
    short = _proc(tmp_path, {"size": {"shortest_edge": 4}, "do_rescale": False, "channel_order": "BGR"})
    assert short.resize == (4,) and short.rescale == 1.0 and short.channel_order == "bgr"
    assert short(np.zeros((1, 8, 16, 3), np.uint8)).shape == (1, 3, 4, 8)


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"do_pad": True, "pad_size": {"height": 9, "width": 9}}, "sets do_pad, pad_size, which mintaudit does not"),
        ({"do_resize": True, "size": {"longest_edge": 9}}, "size .* is not understood"),
        ({"do_resize": True, "size": {"height": 9, "width": 9}, "resample": 1}, "resample 1"),
        ({"image_mean": [0.5, 0.5], "image_std": [0.5]}, "one value or three"),
    ],
)
def test_preprocessor_keys_that_change_pixels_and_are_not_understood_are_refused(tmp_path, cfg, match):
    with pytest.raises(ConfigError, match=match):
        _proc(tmp_path, cfg)


def test_layers_lists_an_hf_folder_and_a_wrong_size_is_one_line(saved, refused, capsys):
    from mintaudit.cli import main

    _, path = saved["vit"]
    assert main(["layers", f"hf:{path}", "--dataset", "digits"]) == 0
    out = capsys.readouterr().out
    assert "vit.layernorm" in out and "classifier" in out
    line = refused(["layers", f"hf:{path}", "--dataset", "digits", "--image-size", "16"])
    assert f"hf:{path}" in line


def test_a_model_for_larger_images_reads_the_pool_resized_by_its_preprocessor_config(tmp_path, capsys):
    from mintaudit.cli import main

    cfg = transformers.ViTConfig(
        image_size=16,
        patch_size=8,
        num_channels=3,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=8,
        num_labels=10,
    )
    path = _save(transformers.ViTForImageClassification(cfg).eval(), tmp_path / "vit16")
    proc = {"do_resize": True, "size": {"height": 16, "width": 16}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    (tmp_path / "vit16" / "preprocessor_config.json").write_text(json.dumps(proc))
    assert main(["layers", f"hf:{path}", "--dataset", "digits"]) == 0  # 8x8 grey digits -> 16x16 RGB
    assert "vit.layernorm" in capsys.readouterr().out
