"""Our attack scores against transcriptions of the published reference code, on synthetic logits.

Each reference below is restated from its source (cited at each function) in plain numpy, keeping
its estimators, constants and sign conventions; our score must rank the samples as the
reference does (ties only where the inputs tie) and, where both are finite and defined, give
the same values up to the documented sign or scale. No model is trained.

LiRA (issue 13, item 7) is checked offline and online with R = 1, 2, 4, 8 reference models,
per-sample and fixed variance.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from mintaudit.attacks import entropy_scores, lira_scores, modified_entropy_scores, rmia_scores
from mintaudit.attacks.scores import lira_variance
from mintaudit.errors import ConfigError

# ---- reference transcriptions ---------------------------------------------------------------


def tfp_compute_score_lira(stat_target, stat_in, stat_out, option="both", fix_variance=False, median_or_mean="median"):
    """tensorflow/privacy ``compute_score_lira``, restated.

    Source: github.com/tensorflow/privacy, file
    tensorflow_privacy/privacy/privacy_tests/membership_inference_attack/advanced_mia.py
    (commit 3f6d0acdef14afdb21b39426f6da36b6e1b34fff), Apache-2.0.

    ``stat_target`` (n, k); ``stat_in[i]`` / ``stat_out[i]`` (m_i, k): sample i's statistics under
    its IN / OUT shadow models (k augmentations). The centre is the median (or mean) over the
    models, the spread ``np.nanstd`` (ddof 0) over the models, or with ``fix_variance`` over every
    residual of every sample; NaN centres / spreads take their column's mean; 1e-30 is added to
    the spread. Returns ``-(log Pr_in - log Pr_out)`` averaged over augmentations ("both"),
    ``log Pr_out`` ("out"), or ``-log Pr_in`` ("in"): LOWER means more likely a member.
    """
    centre_of = np.nanmedian if median_or_mean == "median" else np.nanmean

    def nan_to_column_mean(a):
        col = np.nanmean(a, axis=0)
        return np.where(np.isnan(a), col[None], a)

    def fit(per_sample):
        centre = nan_to_column_mean(np.array([centre_of(s, axis=0) for s in per_sample]))
        if fix_variance:
            spread = np.nanstd(np.concatenate([s - c[None] for s, c in zip(per_sample, centre)]))
        else:
            spread = nan_to_column_mean(np.array([np.nanstd(s, axis=0) for s in per_sample]))
        return centre, spread

    stat_target = np.asarray(stat_target)
    if option in ("in", "both"):
        mu_in, sd_in = fit(stat_in)
        log_in = stats.norm.logpdf(stat_target, mu_in, sd_in + 1e-30)
    if option in ("out", "both"):
        mu_out, sd_out = fit(stat_out)
        log_out = stats.norm.logpdf(stat_target, mu_out, sd_out + 1e-30)
    if option == "both":
        return -(log_in - log_out).mean(axis=1)
    return -log_in.mean(axis=1) if option == "in" else log_out.mean(axis=1)


def paper_offline_lira_z(stat_target, stat_out, fix_variance=False):
    """The offline LiRA test of Carlini et al. 2022 ("Membership Inference Attacks From First
    Principles", S&P 2022, Sec. IV-C): ``Lambda = Pr[Z < phi(x)]``, ``Z ~ N(mu_out, s_out^2)``.

    tensorflow/privacy has no one-sided test (its ``option="out"`` is the two-sided density), so
    the OUT Gaussian is fitted with its estimators (above, mean option) and the paper's formula
    applied. Returns the z-score whose normal CDF is Lambda: Phi is strictly increasing, so the
    exact ranking of Lambda is the ranking of z (Lambda itself, in float64, is 1.0 beyond z = 8.3).
    """
    centre = np.array([np.nanmean(s, axis=0) for s in stat_out])
    if fix_variance:
        spread = np.nanstd(np.concatenate([s - c[None] for s, c in zip(stat_out, centre)]))
    else:
        spread = np.array([np.nanstd(s, axis=0) for s in stat_out])
    return (np.asarray(stat_target) - centre) / (spread + 1e-30)


def mpm_run_rmia(target_signals, ref_signals, z_target_signals, z_ref_signals, offline_a):
    """ml_privacy_meter ``run_rmia`` with offline (all-OUT) reference models, restated.

    Source: github.com/privacytrustlab/ml_privacy_meter, modules/mia/attacks/rmia.py
    (commit 0b8cb7aa0fa136566f244b8e701d435d484c58f8), MIT. Signals are the softmax probability
    of the true label, ``ref_signals`` (n, R); with every sample OUT, ``get_out_ref_signals``
    keeps all R columns. Returns the share of population samples z with ratio > 1.
    """

    def ratio(target, refs):
        return target.ravel() / ((1 + offline_a) / 2 * refs.mean(axis=1) + (1 - offline_a) / 2)

    ratios = ratio(target_signals, ref_signals)[:, None] / ratio(z_target_signals, z_ref_signals)
    return np.average(ratios > 1.0, axis=1)


def inspire_log_value(probs, small_value=1e-30):
    return -np.log(np.maximum(probs, small_value))


def inspire_entr_comp(probs):
    """inspire-group/membership-inference-evaluation ``_entr_comp`` (membership_inference_attacks.py,
    Song & Mittal, USENIX Security 2021), restated: the prediction entropy (members: LOW)."""
    return np.sum(probs * inspire_log_value(probs), axis=1)


def inspire_m_entr_comp(probs, true_labels):
    """The same file's ``_m_entr_comp``: ``-(1-p_y) log p_y - sum_{i != y} p_i log(1-p_i)`` (members: LOW)."""
    rows = np.arange(true_labels.size)
    log_probs, log_reverse = inspire_log_value(probs), inspire_log_value(1 - probs)
    weights, logs = probs.copy(), log_reverse.copy()
    weights[rows, true_labels] = 1 - probs[rows, true_labels]
    logs[rows, true_labels] = log_probs[rows, true_labels]
    return np.sum(weights * logs, axis=1)


# ---- synthetic inputs -------------------------------------------------------------------------

N = 2000


def _paired_halves(r, n, rng):
    """Reference model 2k trains on a random half, 2k+1 on the other half (as attacks.reference)."""
    mask = np.zeros((r, n), dtype=bool)
    for k in range(0, r, 2):
        half = rng.permutation(n)[: n // 2]
        mask[k, half] = True
        if k + 1 < r:
            mask[k + 1] = ~mask[k]
    return mask


def _logits(phi):
    """Two classes, logits (0, phi) and label 1: LiRA's logit-scaled confidence is phi exactly."""
    return np.stack([np.zeros_like(phi), phi], -1)


def _lira_inputs(r, *, online, augmentations=1, seed=0):
    """Per-sample difficulty; IN models and members see their confidence raised by 2."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 3, N)
    member = rng.random(N) < 0.5
    ref_in = _paired_halves(r, N, rng) if online else np.zeros((r, N), dtype=bool)
    shift = rng.normal(0, 0.3, augmentations)[:, None]  # each augmentation a little easier or harder
    phi_ref = difficulty + shift + 2.0 * ref_in[:, None] + rng.normal(0, 0.5, (r, augmentations, N))  # (R, A, N)
    phi_target = difficulty + shift + 2.0 * member + rng.normal(0, 0.5, (augmentations, N))  # (A, N)
    # the reference code's layout: stat_target (n, k), stat_in[i] / stat_out[i] (m_i, k)
    stat_in = [phi_ref[ref_in[:, i], :, i] for i in range(N)]
    stat_out = [phi_ref[~ref_in[:, i], :, i] for i in range(N)]
    ours = {
        "logits": _logits(phi_target),
        "labels": np.ones(N, dtype=int),
        "ref_logits": _logits(phi_ref),
        "ref_in": ref_in,
    }
    if augmentations == 1:
        ours["logits"], ours["ref_logits"] = ours["logits"][0], ours["ref_logits"][:, 0]
    return ours, (phi_target.T, stat_in, stat_out), member


def _same_ranking(ours, reference):
    np.testing.assert_array_equal(stats.rankdata(ours), stats.rankdata(reference))


# ---- LiRA ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixed", [False, True], ids=["per-sample", "fixed"])
@pytest.mark.parametrize("r", [1, 2, 4, 8])
def test_lira_offline_ranks_as_the_papers_one_sided_test(r, fixed):
    ours_in, (target, _, stat_out), member = _lira_inputs(r, online=False)
    ours = lira_scores(**ours_in, fixed_variance=fixed)
    z = paper_offline_lira_z(target, stat_out, fix_variance=fixed)[:, 0]
    _same_ranking(ours, z)
    assert len(np.unique(ours)) == N  # no ties: the inputs have none
    if r >= 2:  # a real variance: the same z-scores (R = 1: the reference's spread is 0, ours the statistics')
        np.testing.assert_allclose(ours, z, rtol=1e-9, atol=1e-9)
    # the saturation of issue 13: Lambda in float64 ties where z does not
    if r == 1:
        assert len(np.unique(stats.norm.cdf(z))) < N // 2


@pytest.mark.parametrize("fixed", [False, True], ids=["per-sample", "fixed"])
@pytest.mark.parametrize("r", [2, 4, 8])
def test_lira_online_ranks_and_scores_as_tensorflow_privacy(r, fixed):
    ours_in, (target, stat_in, stat_out), member = _lira_inputs(r, online=True)
    ours = lira_scores(**ours_in, online=True, fixed_variance=fixed)
    theirs = tfp_compute_score_lira(target, stat_in, stat_out, option="both", fix_variance=fixed, median_or_mean="mean")
    _same_ranking(ours, -theirs)  # theirs: lower = member
    assert len(np.unique(ours)) == N
    if r >= 4:  # two models a side or more: the same fit, the same log-likelihood ratios
        np.testing.assert_allclose(ours, -theirs, rtol=1e-9, atol=1e-9)
    else:
        # R = 2, one model a side: the reference's spread is 0 (+1e-30) and its scores ~1e60; ours are real
        # log-likelihood ratios under one shared variance (that of every reference statistic)
        assert np.abs(theirs).max() > 1e50 and np.abs(ours).max() < 1e3
        ref, x = ours_in["ref_logits"][..., 1], ours_in["logits"][:, 1]  # the statistics phi
        mu_in = np.where(ours_in["ref_in"], ref, 0).sum(0)  # one model a side: its value is the mean
        mu_out = np.where(~ours_in["ref_in"], ref, 0).sum(0)
        sd = ref.std()
        np.testing.assert_allclose(ours, stats.norm.logpdf(x, mu_in, sd) - stats.norm.logpdf(x, mu_out, sd))


@pytest.mark.parametrize("fixed", [False, True], ids=["per-sample", "fixed"])
@pytest.mark.parametrize("r", [4, 8])
def test_lira_online_with_augmentations_as_tensorflow_privacy(r, fixed):
    ours_in, (target, stat_in, stat_out), _ = _lira_inputs(r, online=True, augmentations=2)
    ours = lira_scores(**ours_in, online=True, fixed_variance=fixed)
    theirs = tfp_compute_score_lira(target, stat_in, stat_out, option="both", fix_variance=fixed, median_or_mean="mean")
    np.testing.assert_allclose(ours, -2 * theirs, rtol=1e-9, atol=1e-9)  # summed over 2 augmentations, theirs averaged


def test_lira_online_needs_an_in_model_for_every_sample():
    ours_in, _, _ = _lira_inputs(1, online=True)  # one model: every sample is IN or OUT, never both
    with pytest.raises(ConfigError, match="no (IN|OUT) reference model; train more"):
        lira_scores(**ours_in, online=True)


def test_lira_pools_only_real_variances_and_says_so():
    rng = np.random.default_rng(3)
    ours_in, _, _ = _lira_inputs(4, online=True)
    ref_in = ours_in["ref_in"].copy()
    few = rng.permutation(N)[:300]
    ref_in[:, few] = [[True], [False], [False], [False]]  # 300 samples: 1 IN model, 3 OUT
    ours_in["ref_in"] = ref_in
    x, ref = ours_in["logits"][:, 1], ours_in["ref_logits"][..., 1]
    cnt_in = ref_in.sum(0)
    mu_in = np.where(ref_in, ref, 0).sum(0) / cnt_in
    var_in = np.where(ref_in, (ref - mu_in) ** 2, 0).sum(0) / cnt_in
    real = cnt_in >= 2
    pooled_in = (var_in[real] * cnt_in[real]).sum() / cnt_in[real].sum()  # the zeros of one-model samples left out
    cnt_out = (~ref_in).sum(0)
    mu_out = np.where(~ref_in, ref, 0).sum(0) / cnt_out
    var_out = np.where(~ref_in, (ref - mu_out) ** 2, 0).sum(0) / cnt_out
    want = stats.norm.logpdf(x, mu_in, np.sqrt(np.where(real, var_in, pooled_in))) - stats.norm.logpdf(
        x, mu_out, np.sqrt(var_out)
    )
    np.testing.assert_allclose(lira_scores(**ours_in, online=True), want, rtol=1e-9)
    info = lira_variance(ref_in, online=True)
    assert info == {
        "variance": "per-sample",
        "n_pooled": {"out": 0, "in": 300},
        "pool": {"out": "per-sample variances", "in": "per-sample variances"},
    }
    assert lira_variance(ref_in, online=True, fixed_variance=True)["n_pooled"] == {"out": N, "in": N}
    assert lira_variance(np.zeros((1, 5), dtype=bool))["pool"] == {"out": "all reference statistics"}
    assert lira_variance(_paired_halves(2, 6, rng), online=True)["pool"] == {
        "out": "all reference statistics",
        "in": "all reference statistics",
    }


# ---- RMIA and the entropies ------------------------------------------------------------------


@pytest.mark.parametrize("r", [1, 2, 4, 8])
def test_rmia_equals_ml_privacy_meter(r):
    rng = np.random.default_rng(r)
    k, m = 10, 500
    z, y = rng.normal(size=(N, k)) * 3, rng.integers(0, k, N)
    refs = z[None] * 0.7 + rng.normal(0, 1, (r, N, k))
    pz, py = rng.normal(size=(m, k)) * 3, rng.integers(0, k, m)
    prefs = pz[None] * 0.7 + rng.normal(0, 1, (r, m, k))

    def signal(logits, labels):  # softmax probability of the true label, the reference's signal
        return special.softmax(logits, -1)[..., np.arange(len(labels)), labels]

    theirs = mpm_run_rmia(signal(z, y), signal(refs, y).T, signal(pz, py), signal(prefs, py).T, offline_a=0.33)
    ours = rmia_scores(z, y, refs, pz, py, prefs, offline_a=0.33, gamma=1.0)
    np.testing.assert_array_equal(ours, theirs)


def test_entropy_and_modified_entropy_equal_inspire_group():
    rng = np.random.default_rng(7)
    z, y = rng.normal(size=(N, 10)) * 3, rng.integers(0, 10, N)
    p = special.softmax(z, -1)
    np.testing.assert_allclose(entropy_scores(z), -inspire_entr_comp(p), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(modified_entropy_scores(z, y), -inspire_m_entr_comp(p, y), rtol=1e-9, atol=1e-12)
    _same_ranking(entropy_scores(z), -inspire_entr_comp(p))
    _same_ranking(modified_entropy_scores(z, y), -inspire_m_entr_comp(p, y))
