"""Combine the five crops' class scores into one prediction per face (numpy only)."""
from __future__ import annotations

import numpy as np

COMBINE_MODES = ("mean", "vote")


def combine_scores(scores5: np.ndarray, mode: str = "mean") -> np.ndarray:
    """scores5 (N,5,C) -> (N,C).

    mean: the paper's averaging of class scores. vote: each crop votes for its argmax; the result
    holds vote counts with the mean score added as a tie-breaker scaled below one vote.
    """
    scores5 = np.asarray(scores5, dtype=np.float64)
    if scores5.ndim != 3:
        raise ValueError(f"expected scores of shape (N, crops, classes), got {scores5.shape}")
    mean = scores5.mean(axis=1)
    if mode == "mean":
        return mean
    if mode == "vote":
        n, k, c = scores5.shape
        votes = np.zeros((n, c))
        np.add.at(votes, (np.repeat(np.arange(n), k), scores5.argmax(2).ravel()), 1.0)
        span = np.ptp(mean, axis=1, keepdims=True) + 1e-12
        return votes + 0.5 * (mean - mean.min(axis=1, keepdims=True)) / span
    raise ValueError(f"unknown combine mode {mode!r}; choose one of {COMBINE_MODES}")
