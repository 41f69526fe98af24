"""The acceptance run on a tiny Hugging Face ViT: docs/tutorials/hugging-face.md executed, then checked."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from mintaudit.cli import main  # noqa: E402
from mintaudit.data import load_dataset  # noqa: E402

PAGE = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "hugging-face.md"
MEAN, STD = 0.3, 0.35


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", PAGE.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """Train a tiny ViT the way a user's script would (its own x / 255, mean 0.3, std 0.35), then run the page."""
    root = tmp_path_factory.mktemp("hfpage")
    torch.manual_seed(0)
    ds = load_dataset("digits")
    member_ids = np.arange(300)
    cfg = transformers.ViTConfig(
        image_size=8,
        patch_size=4,
        num_channels=1,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=10,
    )
    model = transformers.ViTForImageClassification(cfg)
    x = (torch.from_numpy(ds.images[member_ids]).permute(0, 3, 1, 2).float() / 255.0 - MEAN) / STD
    y = torch.from_numpy(ds.labels[member_ids]).long()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    model.train()
    for _ in range(15):
        for i in range(0, len(x), 50):
            opt.zero_grad()
            model(pixel_values=x[i : i + 50], labels=y[i : i + 50]).loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        script_acc = int((model(pixel_values=x).logits.argmax(1) == y).sum()) / len(y)
    (root / "runs" / "vit").mkdir(parents=True)
    cwd = Path.cwd()
    os.chdir(root)
    try:
        (python,) = _blocks("python")
        exec(python, {"model": model, "json": json, "member_ids": member_ids})  # the page's own lines
        for line in _blocks("shell")[0].strip().splitlines():
            argv = shlex.split(line)
            assert argv[0] == "mintaudit"
            assert main([*argv[1:], *([] if argv[1] == "layers" else ["--quiet"])]) == 0, line
        return {"root": root, "model": model, "script_acc": script_acc}
    finally:
        os.chdir(cwd)


def test_the_page_runs_and_the_audit_uses_the_models_own_preprocessing(page):
    report = json.loads((page["root"] / "runs" / "vit-audit" / "report.json").read_text())
    m = report["model"]
    assert m["name"] == "hf:runs/vit"
    assert m["preprocess"] == {"mean": [MEAN], "std": [STD], "grey_to_rgb": False}
    assert m["train_accuracy"] == pytest.approx(page["script_acc"], abs=1e-9)  # the training script's number
    assert m["probe"]["better"] is None and m["probe"]["declared_accuracy"] == pytest.approx(page["script_acc"])
    methods = {(r["method"], r["signal"]) for r in report["results"]}
    assert ("loss", "outputs") in methods and len(report["results"]) >= 4
    assert report["verdict"] and (page["root"] / "runs" / "vit-audit" / "verdict.csv").is_file()
    cached = list((page["root"] / "runs" / "vit-audit" / "cache" / "probe").glob("*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text()) == m["probe"]  # probed once, reused by test


@pytest.mark.parametrize("verb", ["sweep", "test"])
def test_a_contradicting_mean_std_is_refused_on_either_verb(page, refused, verb):
    d = page["root"] / "runs"
    extra = (
        ["--members-file", d / "vit" / "members.txt", "--external", "150", "--test", "150", "--taps", "vit.layernorm"]
        if verb == "sweep"
        else ["--query", "heldout-members"]
    )
    line = refused(
        [verb, "--dataset", "digits", "--model", f"hf:{d / 'vit'}", *extra, "--out", d / "vit-audit", "--mean", "0.5"]
    )
    assert "--mean 0.5" in line and ("declares --mean 0.3 --std 0.35" in line or "--mean 0.3 there" in line), line


def test_the_record_binds_the_folder_and_refuses_changed_files(page, refused, tmp_path):
    import shutil

    d = page["root"] / "runs"
    record = json.loads((d / "vit-audit" / "record.json").read_text())
    assert record["model"]["locator"] == f"hf:{d / 'vit'}" and record["model"]["files_sha256"]
    assert record["model"]["preprocess"]["mean"] == [MEAN]
    copy = tmp_path / "audit"
    shutil.copytree(d / "vit-audit", copy)
    cwd = Path.cwd()
    os.chdir(page["root"])
    try:
        cfg = page["root"] / "runs" / "vit" / "config.json"
        text = cfg.read_text()
        cfg.write_text(text.replace("}", ', "note": 1}', 1) if text.rstrip().endswith("}") else text)
        try:
            line = refused(["test", "--out", copy, "--query", "heldout-members"])
        finally:
            cfg.write_text(text)
    finally:
        os.chdir(cwd)
    assert "changed since the audit record" in line, line


def test_the_loss_auc_equals_auditing_the_same_module_from_python(page):
    import mintaudit
    from mintaudit.data import Splits
    from mintaudit.preprocess import Preprocess
    from mintaudit.targets import open_target

    root = page["root"] / "runs"
    report = json.loads((root / "vit-audit" / "report.json").read_text())
    cli_auc = next(r["metrics"]["auc"] for r in report["results"] if r["method"] == "loss")
    ds = load_dataset("digits").with_preprocess(Preprocess(mean=MEAN, std=STD))
    splits = Splits.load(root / "vit-audit" / "splits.json", dataset=ds)
    net = open_target(f"hf:{root / 'vit'}", input_shape=(1, 8, 8), num_classes=10).module

    def role(ids):
        return ds.batch(ids), torch.from_numpy(ds.labels[ids]).long()

    result = mintaudit.audit(
        net, members=role(splits.members), external=role(splits.external), test=role(splits.test), fusion="outputs"
    )
    api_auc = next(r.metrics["auc"] for r in result.rows if r.method == "loss")
    assert abs(api_auc - cli_auc) <= 0.002, (api_auc, cli_auc)
    # the raw transformers model (a ModelOutput) with a DataLoader of {"pixel_values", "labels"} dicts
    from torch.utils.data import DataLoader

    def loader(ids):
        x, y = role(ids)
        return DataLoader([{"pixel_values": xi, "labels": yi} for xi, yi in zip(x, y)], batch_size=64)

    raw = mintaudit.audit(
        page["model"],
        members=loader(splits.members),
        external=loader(splits.external),
        test=loader(splits.test),
        fusion="outputs",
    )
    raw_auc = next(r.metrics["auc"] for r in raw.rows if r.method == "loss")
    assert abs(raw_auc - cli_auc) <= 0.002, (raw_auc, cli_auc)


def test_weights_beside_an_hf_folder_are_refused(page, refused):
    d = page["root"] / "runs"
    line = refused(
        [
            "test",
            "--dataset",
            "digits",
            "--model",
            f"hf:{d / 'vit'}",
            "--weights",
            d / "vit" / "model.safetensors",
            "--query",
            "heldout-members",
            "--out",
            d / "vit-audit",
        ]
    )
    assert "--weights does not apply to hf:" in line
