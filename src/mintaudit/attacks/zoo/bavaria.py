"""BaVarIA (Brannvall 2026, "Exponential-Family Membership Inference: From LiRA and RMIA to BaVarIA", arXiv 2603.11799).

LiRA's Gaussians on the logit-scaled confidence, with each sample's mean and variance given
conjugate normal-inverse-gamma (NIG) priors instead of LiRA's switch between a per-sample and a
pooled variance. ``bavaria`` is BaVarIA-t, the log ratio of the NIG posterior predictives (Student
t); ``bavaria-n`` is BaVarIA-n, the Gaussian log ratio with the posterior-mean variance. Both are
reported as ``bavaria``.

Where the rule comes from: the paper's abstract (arXiv 2603.11799v1) and the author's public code
release for it (``rickardbrannvall/exponential-family-mia``, ``methods.py``, June 2026, which its
notebook checks against the paper's pipeline); the paper's equation numbers could not be read
from here. For each side (IN, OUT) and sample, with the side's n reference statistics of mean xbar
and squared deviations SS:

- empirical-Bayes prior: mu0 = the mean of every statistic of that side (all samples, all
  models), beta0 = their variance times (alpha0 - 1) when alpha0 > 1 (the prior mean of the
  variance, beta0 / (alpha0 - 1), is then that variance), else the variance itself;
- posterior: kappa_n = kappa0 + n, alpha_n = alpha0 + n / 2, mu_n = (kappa0 mu0 + n xbar) / kappa_n,
  beta_n = beta0 + SS / 2 + kappa0 n (xbar - mu0)^2 / (2 kappa_n) (Murphy 2007, the NIG update);
- BaVarIA-t: ``log t_{2 alpha_n}(x; mu_n, beta_n (kappa_n + 1) / (alpha_n kappa_n))`` IN minus OUT;
- BaVarIA-n: ``log N(x; xbar, beta_n / (alpha_n - 1))`` (``beta_n`` when alpha_n <= 1) IN minus
  OUT, xbar being mu0 for a side with no model (as the author's code).

Offline (the default, as ``lira``): the reference models never saw the scored samples, so the
IN side of every sample is the prior alone (n = 0), its mu0 and beta0 from the reference models'
statistics on their own training samples (the reference population, each IN for half of them);
the OUT prior pools every OUT statistic, scored rows and population rows. Online
(``bavaria.online=true``): the references of ``lira-online``, IN and OUT per sample, priors pooled
over the scored rows. The plain view only (no flip augmentation). A score that is not finite
(degenerate statistics) is 0, as the author's code.

Limits: with many reference models the data swamp the prior, and both scores tend to LiRA
online's per-sample Gaussian log-likelihood ratio (the paper's BASE4 end of its hierarchy).
"""

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from mintaudit.attacks.options import option
from mintaudit.attacks.reference import reference_logits
from mintaudit.attacks.registry import AttackContext, register_attack
from mintaudit.attacks.scores import logit_confidence
from mintaudit.errors import ConfigError, EvaluationError

__all__ = ["BavariaNOptions", "BavariaOptions", "NigPrior", "bavaria_scores", "nig_posterior", "nig_prior"]

_EPS = 1e-10  # the author's floor on variances and scales


@dataclass(frozen=True)
class NigPrior:
    """A normal-inverse-gamma prior: mean ``mu0``, its pseudo-count ``kappa0``, shape ``alpha0``, scale ``beta0``."""

    mu0: float
    kappa0: float
    alpha0: float
    beta0: float


def nig_prior(statistics: np.ndarray, kappa0: float, alpha0: float) -> NigPrior:
    """The empirical-Bayes prior of one side from all its statistics (any shape; NaN ignored).

    ``beta0`` is chosen so that the prior mean of the variance, ``beta0 / (alpha0 - 1)``, is the
    statistics' variance when alpha0 > 1; otherwise it is that variance. No statistic: mean 0, variance 1.
    """
    s = np.asarray(statistics, dtype=np.float64).ravel()
    s = s[~np.isnan(s)]
    mu0, var = (float(s.mean()), float(s.var())) if s.size else (0.0, 1.0)
    beta0 = var * (alpha0 - 1.0) if alpha0 > 1.0 else var
    return NigPrior(mu0, kappa0, alpha0, max(beta0, _EPS))


def nig_posterior(stats_: np.ndarray, mask: np.ndarray, prior: NigPrior) -> dict[str, np.ndarray]:
    """Each sample's NIG posterior from the statistics ``stats_[r, n]`` where ``mask[r, n]``.

    Args:
        stats_: float (R, N); mask: bool (R, N), the side's models of each sample.

    Returns:
        ``{"n", "xbar", "kappa", "alpha", "mu", "beta"}``, each float64 (N,); a sample with no
        model keeps the prior (``xbar`` = ``mu0``).

    Example:
        >>> post = nig_posterior(np.array([[1.0], [3.0]]), np.ones((2, 1), bool), NigPrior(0.0, 1.0, 2.0, 1.0))
        >>> [round(float(post[k][0]), 4) for k in ("kappa", "alpha", "mu", "beta")]
        [3.0, 3.0, 1.3333, 3.3333]
    """
    x, m = np.asarray(stats_, dtype=np.float64), np.asarray(mask, dtype=bool)
    n = m.sum(0).astype(np.float64)
    total = np.where(m, x, 0.0).sum(0)
    xbar = np.where(n > 0, total / np.maximum(n, 1.0), prior.mu0)
    ss = np.where(m, (x - xbar) ** 2, 0.0).sum(0)
    kappa = prior.kappa0 + n
    return {
        "n": n,
        "xbar": xbar,
        "kappa": kappa,
        "alpha": prior.alpha0 + n / 2.0,
        "mu": (prior.kappa0 * prior.mu0 + total) / kappa,
        "beta": prior.beta0 + 0.5 * ss + 0.5 * prior.kappa0 * n * (xbar - prior.mu0) ** 2 / kappa,
    }


def _log_density(x: np.ndarray, post: dict[str, np.ndarray], predictive: Literal["t", "n"]) -> np.ndarray:
    if predictive == "t":
        a, k = post["alpha"], post["kappa"]
        scale = np.sqrt(np.maximum(post["beta"] * (k + 1.0) / (a * k), _EPS))
        return stats.t.logpdf(x, 2.0 * a, loc=post["mu"], scale=scale)
    a = post["alpha"]
    var = post["beta"] / np.where(a > 1.0, a - 1.0, 1.0)  # the posterior mean of the variance; beta when alpha <= 1
    return stats.norm.logpdf(x, post["xbar"], np.sqrt(np.maximum(var, _EPS)))


def bavaria_scores(
    target: np.ndarray,
    ref: np.ndarray,
    ref_in: np.ndarray,
    prior_in: NigPrior,
    prior_out: NigPrior,
    *,
    predictive: Literal["t", "n"] = "t",
    online: bool = False,
) -> np.ndarray:
    """BaVarIA's log-likelihood ratio (see the module docstring), higher = more likely a member.

    Args:
        target: the target model's statistic on each sample (logit-scaled confidence), float (N,).
        ref: the reference models' statistics, float (R, N); ref_in: bool (R, N), sample n in
            model r's training data (offline: all False).
        prior_in, prior_out: :func:`nig_prior` of each side.
        predictive: ``"t"`` (BaVarIA-t) or ``"n"`` (BaVarIA-n).
        online: fit the IN side on the IN models (offline: the IN side is its prior alone).

    Returns:
        float64 (N,).
    """
    if predictive not in ("t", "n"):
        raise ConfigError(f"predictive must be 't' or 'n', got {predictive!r}")
    x, r, m = np.asarray(target, np.float64), np.asarray(ref, np.float64), np.asarray(ref_in, bool)
    if r.ndim != 2 or r.shape[1:] != x.shape or m.shape != r.shape:
        raise EvaluationError(f"ref and ref_in must be (R, N) with N = {x.shape}, got {r.shape} and {m.shape}")
    post_out = nig_posterior(r, ~m, prior_out)
    post_in = nig_posterior(r, m if online else np.zeros_like(m), prior_in)
    with np.errstate(invalid="ignore", over="ignore"):
        s = _log_density(x, post_in, predictive) - _log_density(x, post_out, predictive)
    return np.where(np.isfinite(s), s, 0.0)


def _check_prior(kappa0: float, alpha0: float, name: str) -> None:
    if not kappa0 > 0:
        raise ConfigError(f"--attack-opt {name}.kappa0 must be > 0, got {kappa0}; e.g. {name}.kappa0=1")
    if not alpha0 > 0:
        raise ConfigError(f"--attack-opt {name}.alpha0 must be > 0, got {alpha0}; e.g. {name}.alpha0=2")


@dataclass(frozen=True)
class BavariaOptions:
    """``--attack-opt bavaria.kappa0=1``, ``bavaria.alpha0=2``, ``bavaria.online=false`` (the paper's defaults)."""

    kappa0: float = option(1.0, "NIG prior: pseudo-count of the mean (> 0)")
    alpha0: float = option(2.0, "NIG prior: shape of the variance (> 0; 2 gives the prior predictive a variance)")
    online: bool = option(False, "fit IN and OUT per sample on lira-online's reference models (else offline)")

    def __post_init__(self) -> None:
        _check_prior(self.kappa0, self.alpha0, "bavaria")


@dataclass(frozen=True)
class BavariaNOptions:
    """``--attack-opt bavaria-n.kappa0=1``, ``bavaria-n.alpha0=1``, ``bavaria-n.online=false``."""

    kappa0: float = option(1.0, "NIG prior: pseudo-count of the mean (> 0)")
    alpha0: float = option(1.0, "NIG prior: shape of the variance (> 0)")
    online: bool = option(False, "fit IN and OUT per sample on lira-online's reference models (else offline)")

    def __post_init__(self) -> None:
        _check_prior(self.kappa0, self.alpha0, "bavaria-n")


def _bavaria(ctx: AttackContext, predictive: Literal["t", "n"]) -> tuple[np.ndarray, dict[str, Any]]:
    opts, labels = ctx.options, ctx.labels
    ref_set, rl = ctx.reference("online" if opts.online else "offline")
    target = logit_confidence(ctx.logits, labels)
    ref = logit_confidence(rl[:, 0], labels)  # (R, N), the plain view
    ref_in = ref_set.in_mask(ctx.scored)
    if opts.online:
        ins, outs = ref[ref_in], ref[~ref_in]
    else:  # the IN prior from the references on their own training samples (the reference population)
        pop = ctx.reference_population
        pop_stats = logit_confidence(
            reference_logits(ref_set, ctx.dataset, pop, ctx.cache_root / "signals").astype(np.float64),
            ctx.dataset.labels[pop],
        )
        pop_in = ref_set.in_mask(pop)
        ins, outs = pop_stats[pop_in], np.r_[ref[~ref_in], pop_stats[~pop_in]]
    prior_in, prior_out = nig_prior(ins, opts.kappa0, opts.alpha0), nig_prior(outs, opts.kappa0, opts.alpha0)
    s = bavaria_scores(target, ref, ref_in, prior_in, prior_out, predictive=predictive, online=opts.online)
    return s, {
        "predictive": "student-t" if predictive == "t" else "normal",
        "online": opts.online,
        "kappa0": opts.kappa0,
        "alpha0": opts.alpha0,
        "prior": {
            "in": {"mu0": prior_in.mu0, "beta0": prior_in.beta0, "n_statistics": int(np.size(ins))},
            "out": {"mu0": prior_out.mu0, "beta0": prior_out.beta0, "n_statistics": int(np.size(outs))},
        },
    }


@register_attack("bavaria", needs_references=True, label="BaVarIA-t", options=BavariaOptions)
def bavaria(ctx: AttackContext) -> tuple[np.ndarray, dict[str, Any]]:
    return _bavaria(ctx, "t")


@register_attack("bavaria-n", method="bavaria", needs_references=True, label="BaVarIA-n", options=BavariaNOptions)
def bavaria_n(ctx: AttackContext) -> tuple[np.ndarray, dict[str, Any]]:
    return _bavaria(ctx, "n")
