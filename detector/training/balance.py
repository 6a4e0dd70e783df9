"""Classes of unequal size: weighted in the loss, or the smaller ones repeated (the original project's fix)."""

from __future__ import annotations

import numpy as np

__all__ = ["balanced", "class_weights", "upsample"]


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """Weights that give every present class the same total weight; absent classes weigh 0."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    present = counts > 0
    w = np.where(present, len(labels) / (present.sum() * np.maximum(counts, 1)), 0.0)
    return {i: float(w[i]) for i in range(n_classes)}


def upsample(labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices with every class repeated up to the largest class's count (the original project's fix)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    target = counts.max()
    idx = []
    for c in np.flatnonzero(counts):
        members = np.flatnonzero(labels == c)
        extra = rng.choice(members, target - len(members), replace=True) if target > len(members) else []
        idx.extend(members.tolist() + list(extra))
    return np.asarray(sorted(idx))


def balanced(labels: np.ndarray, n_classes: int, balance: str, seed: int) -> tuple[np.ndarray, dict[int, float] | None]:
    """(indices of the samples to train on, class weights or None) for a `TrainConfig.balance` mode."""
    idx = upsample(labels, seed) if balance == "upsample" else np.arange(len(labels))
    weights = class_weights(labels, n_classes) if balance == "class-weight" else None
    return idx, weights
