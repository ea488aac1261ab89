"""A linear probe on a frozen detector's features, fitted to an operator's own labelled sources.

Why a probe: a frozen network's features may separate real from generated images on sources its own head
never saw (issue 22 measured 0.77 ROC-AUC that way where the head gave 0.37), and a logistic head on a few
hundred images fits in seconds on a CPU. Why leave-source-out: a probe fitted and measured on the same sources
learns the sources (their cameras, compression, subjects), not synthesis.

- Model: L2-regularised logistic regression on standardised features, classes weighted equally, fitted by
  Newton's method (deterministic: the same data gives the same weights, bit for bit on one machine).
- Selection: the regularisation strength with the best pooled leave-one-source-out ROC-AUC.
- Figures: nested leave-one-source-out: each source is scored by a probe whose strength was chosen and whose
  weights were fitted without it. Those out-of-source scores are what the validation record describes; the
  probe written to disk is then fitted on every source with the strength chosen on all of them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from server.detection.validation import DataError, roc_auc

STRENGTHS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)  # L2 penalty on standardised weights; the class weights sum to 1
DEFAULT_STRENGTH = 1e-2
NEWTON_STEPS = 50


@dataclass(frozen=True)
class Probe:
    """logit = weight . x + bias on raw (unstandardised) features: the head the detector's net will carry."""

    weight: np.ndarray
    bias: float
    strength: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight + self.bias

    def scores(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.logits(x), -30, 30)))


def fit(x: np.ndarray, y: np.ndarray, strength: float) -> Probe:
    """Weighted L2 logistic regression by Newton's method, standardisation folded into the weights."""
    if len(set(y.tolist())) < 2:
        raise DataError("a probe needs real and AI-generated images to fit")
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    sw = np.where(y == 1, 0.5 / (y == 1).sum(), 0.5 / (y == 0).sum())  # each class weighs one half
    penalty = np.full(z.shape[1], float(strength))
    penalty[-1] = 0.0  # the bias is not shrunk
    beta = np.zeros(z.shape[1])
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -30, 30)))
        grad = z.T @ (sw * (p - y)) + penalty * beta
        hess = (z * (sw * p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-10)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    w = beta[:-1] / sd
    return Probe(w, float(beta[-1] - (w * mu).sum()), strength)


def _groups(keys: Sequence[str]) -> list[str]:
    return sorted(set(keys))


def out_of_source(x: np.ndarray, y: np.ndarray, keys: Sequence[str], strength: float) -> np.ndarray:
    """Each sample's score from a probe fitted without its source (NaN where the rest lacks a class)."""
    keys = np.asarray(keys)
    out = np.full(len(y), np.nan)
    for key in _groups(keys.tolist()):
        mine = keys == key
        if len(set(y[~mine].tolist())) == 2:
            out[mine] = fit(x[~mine], y[~mine], strength).scores(x[mine])
    return out


def select(x: np.ndarray, y: np.ndarray, keys: Sequence[str], strengths: Sequence[float] = STRENGTHS) -> tuple[float, dict[float, float]]:
    """The strength with the best pooled leave-one-source-out AUC (ties: the stronger penalty), and all of them."""
    aucs = {}
    for strength in strengths:
        s = out_of_source(x, y, keys, strength)
        ok = np.isfinite(s)
        aucs[strength] = roc_auc(s[ok & (y == 0)], s[ok & (y == 1)])
    scored = {k: v for k, v in aucs.items() if not np.isnan(v)}
    if not scored:
        return DEFAULT_STRENGTH, aucs  # too few sources to compare: a middling penalty
    return max(scored, key=lambda k: (scored[k], k)), aucs


def nested_scores(x: np.ndarray, y: np.ndarray, keys: Sequence[str],
                  strengths: Sequence[float] = STRENGTHS) -> tuple[np.ndarray, dict[str, float]]:
    """Out-of-source scores where the strength, too, was chosen without the scored source."""
    keys = np.asarray(keys)
    out = np.zeros(len(y))
    chosen: dict[str, float] = {}
    for key in _groups(keys.tolist()):
        mine = keys == key
        strength, _ = select(x[~mine], y[~mine], keys[~mine].tolist(), strengths)
        chosen[key] = strength
        out[mine] = fit(x[~mine], y[~mine], strength).scores(x[mine])
    return out, chosen


def check_sources(y: np.ndarray, keys: Sequence[str]) -> None:
    """Leave-one-source-out needs two sources of each class (else a fold has a class missing)."""
    for label, word in ((0, "real"), (1, "AI-generated")):
        n = len({k for k, lab in zip(keys, y.tolist()) if lab == label})
        if n < 2:
            raise DataError(f"fit-probe needs {word} images from at least 2 sources for leave-source-out (got {n})")
