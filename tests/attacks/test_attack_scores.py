import numpy as np
import pytest
import torch
from scipy import stats

from mintaudit.attacks import (
    calibrated_loss_scores,
    confidence_scores,
    entropy_scores,
    lira_scores,
    logit_confidence,
    loss_scores,
    modified_entropy_scores,
    rmia_scores,
)
from mintaudit.errors import ConfigError, EvaluationError


@pytest.fixture
def outputs():
    rng = np.random.default_rng(0)
    return rng.normal(size=(50, 4)) * 3, rng.integers(0, 4, 50)


def test_loss_confidence_entropy_against_definitions(outputs):
    z, y = outputs
    ce = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(y), reduction="none").numpy()
    assert np.allclose(loss_scores(z, y), -ce)
    p = torch.softmax(torch.tensor(z), 1).numpy()
    assert np.allclose(confidence_scores(z), p.max(1))
    assert np.allclose(entropy_scores(z), -stats.entropy(p, axis=1))


def test_modified_entropy_against_a_loop(outputs):
    z, y = outputs
    p = torch.softmax(torch.tensor(z), 1).numpy()
    want = []
    for pi, yi in zip(p, y):
        m = -(1 - pi[yi]) * np.log(pi[yi])
        m -= sum(pi[j] * np.log(1 - pi[j]) for j in range(len(pi)) if j != yi)
        want.append(-m)
    assert np.allclose(modified_entropy_scores(z, y), want)


def test_logit_confidence_is_log_odds_and_stable(outputs):
    z, y = outputs
    p = torch.softmax(torch.tensor(z), 1).numpy()[np.arange(len(y)), y]
    assert np.allclose(logit_confidence(z, y), np.log(p / (1 - p)))
    big = np.array([[1000.0, 0.0, -5.0]])
    assert np.isfinite(logit_confidence(big, np.array([0])))[0]
    assert logit_confidence(big, np.array([0]))[0] == pytest.approx(1000.0 - np.log1p(np.exp(-5.0)))


def test_calibrated_loss_subtracts_mean_reference_loss(outputs):
    z, y = outputs
    refs = np.stack([z + 1.0, z * 0.5])
    want = loss_scores(z, y) - (loss_scores(refs[0], y) + loss_scores(refs[1], y)) / 2
    assert np.allclose(calibrated_loss_scores(z, y, refs), want)


def _synthetic_lira(n=400, r=16, seed=0):
    """Per-sample difficulty d_n; IN models see confidence d_n + 2, OUT models d_n."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 3, n)
    member = np.arange(n) < n // 2
    ref_in = rng.random((r, n)) < 0.5
    phi_ref = difficulty + 2.0 * ref_in + rng.normal(0, 0.5, (r, n))
    phi_target = difficulty + 2.0 * member + rng.normal(0, 0.5, n)

    # two classes, logits (0, phi) with label 1 give logit_confidence == phi exactly
    def logits(phi):
        return np.stack([np.zeros_like(phi), phi], -1)

    y = np.ones(n, dtype=int)
    return logits(phi_target), y, logits(phi_ref), ref_in, member, phi_target


def test_lira_separates_where_loss_cannot():
    z, y, refs, ref_in, member, _ = _synthetic_lira()
    from mintaudit.evaluation import auc_score

    loss_auc = auc_score(member, loss_scores(z, y))
    online = auc_score(member, lira_scores(z, y, refs, ref_in, online=True))
    offline = auc_score(member, lira_scores(z, y, refs, ref_in))
    fixed = auc_score(member, lira_scores(z, y, refs, ref_in, online=True, fixed_variance=True))
    assert loss_auc < 0.75 < offline and online > 0.95 and fixed > 0.95


def test_lira_offline_matches_the_gaussian_definition():
    z, y, refs, ref_in, _, phi = _synthetic_lira(n=20, r=16)
    assert (~ref_in).sum(0).min() >= 2  # per-sample variances are defined
    out = np.where(~ref_in, logit_confidence(refs, y), np.nan)
    mu, sd = np.nanmean(out, 0), np.nanstd(out, 0)  # ddof 0, as tensorflow/privacy and the LiRA authors' code
    ours = lira_scores(z, y, refs, ref_in)
    assert np.allclose(ours, (phi - mu) / sd)  # the one-sided test's z-score
    assert (np.argsort(ours) == np.argsort(stats.norm.logcdf(phi, mu, sd))).all()


def test_lira_test_time_augmentation_sums_per_view():
    z, y, refs, ref_in, _, _ = _synthetic_lira(n=30, r=8)
    z2, refs2 = np.stack([z, z]), np.stack([refs, refs], 1)  # (A, N, K), (R, A, N, K)
    # online: log-likelihood ratios summed; offline: z-scores combined by Stouffer's rule
    assert np.allclose(lira_scores(z2, y, refs2, ref_in, online=True), 2 * lira_scores(z, y, refs, ref_in, online=True))
    assert np.allclose(lira_scores(z2, y, refs2, ref_in), np.sqrt(2) * lira_scores(z, y, refs, ref_in))


def test_lira_errors():
    z, y, refs, ref_in, _, _ = _synthetic_lira(n=10, r=4)
    with pytest.raises(ConfigError, match="ref_in"):
        lira_scores(z, y, refs, online=True)
    with pytest.raises(ConfigError, match="no IN"):
        lira_scores(z, y, refs, np.zeros_like(ref_in), online=True)
    with pytest.raises(EvaluationError):
        lira_scores(z, y, refs, ref_in[:, :3])


def test_rmia_against_a_brute_force_loop(outputs):
    rng = np.random.default_rng(1)
    z, y = outputs
    refs = z[None] + rng.normal(0, 1, (2, *z.shape))
    pz, py = rng.normal(size=(30, 4)) * 3, rng.integers(0, 4, 30)
    prefs = pz[None] + rng.normal(0, 1, (2, *pz.shape))
    a, gamma = 0.3, 1.5

    def prob(logits, labels):
        return np.exp(loss_scores(logits, labels))

    def ratio(t, r, lab):
        return prob(t, lab) / (0.5 * ((1 + a) * np.mean([prob(ri, lab) for ri in r], 0) + (1 - a)))

    rx, rz = ratio(z, refs, y), ratio(pz, prefs, py)
    want = [np.mean([(x / zz) > gamma for zz in rz]) for x in rx]
    assert np.allclose(rmia_scores(z, y, refs, pz, py, prefs, offline_a=a, gamma=gamma), want)
    with pytest.raises(ConfigError):
        rmia_scores(z, y, refs, pz, py, prefs, offline_a=1.5)


def test_bad_inputs():
    with pytest.raises(EvaluationError, match="NaN"):
        loss_scores(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(EvaluationError, match="labels must lie"):
        loss_scores(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(EvaluationError, match="labels of shape"):
        loss_scores(np.zeros((2, 3)), np.array([0]))
