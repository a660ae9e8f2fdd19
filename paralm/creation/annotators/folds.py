"""Out-of-fold assignment for annotators fitted on the corpus: grouped by speaker, seeded, balanced.

A sample's fold decides which model labels it: the model fitted on the other K-1 folds. Samples of
one speaker (or voice) always share a fold, so no model ever labels a speaker it heard in training.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

GROUP_FIELDS: tuple[str, ...] = ("speaker", "speaker_id", "voice")


def group_of(meta: dict, field: str | None = None) -> str:
    """The sample's speaker group: `field` if given, else the first of GROUP_FIELDS present, else its key."""
    names = (field,) if field else GROUP_FIELDS
    for name in names:
        value = meta.get(name)
        if value not in (None, ""):
            return f"{name}={value}"
    return f"key={meta['key']}"


def assign_folds(groups: list[str], k: int, seed: int = 0) -> list[int]:
    """One fold id in [0, k) per sample; whole groups go to the currently smallest fold, in seeded order."""
    if k < 2:
        raise ValueError(f"--folds must be >= 2 for out-of-fold predictions, got {k}")
    unique = sorted(set(groups))
    if len(unique) < k:
        raise ValueError(f"--folds {k} needs at least {k} speaker groups in the training split, found {len(unique)}")
    sizes = Counter(groups)
    order = np.random.default_rng(seed).permutation(len(unique))
    ordered = sorted((unique[i] for i in order), key=lambda g: -sizes[g])  # stable: seeded order among ties
    load = [0] * k
    fold_of: dict[str, int] = {}
    for g in ordered:
        f = int(np.argmin(load))
        fold_of[g] = f
        load[f] += sizes[g]
    return [fold_of[g] for g in groups]
