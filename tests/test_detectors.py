import numpy as np
import pytest

from mintaudit.detectors import DetectorConfig, MintDetector
from mintaudit.errors import ConfigError, NotFittedError, SignalError
from mintaudit.evaluation.metrics import auc_score


def _maps(n, shift, rng):
    x = rng.normal(size=(n, 4, 6, 6)).astype(np.float32)
    x[:, 1] += shift  # channel 1 carries the membership signal
    return x


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_detector_learns_a_real_signal(kind):
    rng = np.random.default_rng(0)
    X = np.concatenate([_maps(300, 0.6, rng), _maps(300, 0.0, rng)])
    y = np.r_[np.ones(300), np.zeros(300)].astype(int)
    det = MintDetector.from_config(DetectorConfig(kind=kind, epochs=15, seed=0), show_progress=False).fit(X, y)
    Xt = np.concatenate([_maps(200, 0.6, rng), _maps(200, 0.0, rng)])
    yt = np.r_[np.ones(200), np.zeros(200)]
    assert auc_score(yt, det.decision_function(Xt)) > 0.85
    p = det.predict_proba(Xt)
    assert p.shape == (400, 2) and np.allclose(p.sum(1), 1.0, atol=1e-6)
    assert det.kind_ == kind


def test_detector_at_chance_on_noise():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 16)).astype(np.float32)
    y = np.r_[np.ones(200), np.zeros(200)].astype(int)
    det = MintDetector.from_config(DetectorConfig(epochs=10), show_progress=False).fit(X, y)
    Xt = rng.normal(size=(1000, 16)).astype(np.float32)
    yt = np.r_[np.ones(500), np.zeros(500)]
    assert 0.42 < auc_score(yt, det.decision_function(Xt)) < 0.58


def test_fusion_with_output_signals_helps_when_only_they_carry_signal():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(600, 8)).astype(np.float32)
    y = np.r_[np.ones(300), np.zeros(300)].astype(int)
    extra = rng.normal(size=(600, 2)).astype(np.float32) + y[:, None] * 1.0
    fused = MintDetector.from_config(DetectorConfig(epochs=15), show_progress=False).fit(X, y, extra)
    Xt = rng.normal(size=(400, 8)).astype(np.float32)
    yt = np.r_[np.ones(200), np.zeros(200)]
    et = rng.normal(size=(400, 2)).astype(np.float32) + yt[:, None]
    assert auc_score(yt, fused.decision_function(Xt, et)) > 0.8
    with pytest.raises(SignalError, match="extra"):
        fused.decision_function(Xt)


def test_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(100, 3, 4, 4)).astype(np.float32)
    y = np.r_[np.ones(50), np.zeros(50)].astype(int)
    det = MintDetector.from_config(DetectorConfig(kind="cnn", epochs=2), show_progress=False).fit(X, y)
    det.save(tmp_path)
    loaded = MintDetector.load(tmp_path)
    assert np.allclose(det.decision_function(X), loaded.decision_function(X), atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detector.json", "detector.safetensors"]


def test_contract_errors():
    with pytest.raises(NotFittedError, match="call fit first"):
        MintDetector().decision_function(np.zeros((2, 3), np.float32))
    with pytest.raises(ConfigError, match="kind"):
        DetectorConfig(kind="svm")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cnn detector reads activation maps"):
        MintDetector.from_config(DetectorConfig(kind="cnn")).fit(
            np.zeros((10, 3), np.float32), np.r_[np.ones(5), np.zeros(5)]
        )
    with pytest.raises(SignalError, match="both classes"):
        MintDetector().fit(np.zeros((10, 3), np.float32), np.ones(10))
    det = MintDetector.from_config(DetectorConfig(epochs=1), show_progress=False).fit(
        np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32), np.r_[np.ones(10), np.zeros(10)]
    )
    with pytest.raises(SignalError, match="per-sample shape"):
        det.decision_function(np.zeros((2, 4), np.float32))


def test_a_detector_saved_before_classes_were_stored_loads_as_0_1(tmp_path):
    import json

    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    y = np.r_[np.ones(30), np.zeros(30)].astype(int)
    det = MintDetector(epochs=2, show_progress=False).fit(X, y)
    det.save(tmp_path)
    meta = json.loads((tmp_path / "detector.json").read_text())
    assert meta.pop("classes") == [0, 1]
    (tmp_path / "detector.json").write_text(json.dumps(meta))
    loaded = MintDetector.load(tmp_path)
    assert list(loaded.classes_) == [0, 1] and loaded.n_features_in_ == 5
    assert np.array_equal(loaded.predict(X), det.predict(X))
