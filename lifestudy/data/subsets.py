"""The small-data regime: a stratified, seeded subset of N training images per class.

The subset for a class is the first N of one seeded permutation of that class's images,
so for a fixed seed the subsets are *nested* (the 10-per-class set lies inside the
50-per-class set), and curves of accuracy against training-set size change one thing at
a time -- the protocol of data-efficiency studies such as Lee et al. 2021 ("Vision
Transformer for Small-Size Datasets") and Liu et al. 2021 ("Efficient Training of Visual
Transformers with Small Datasets").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from torch.utils.data import Dataset, Subset

from lifestudy.errors import ConfigError

__all__ = ["stratified_indices", "ClassSubset"]


def stratified_indices(targets: Sequence[int], per_class: int, seed: int = 0,
                       num_classes: int | None = None, name: str = "dataset") -> list[int]:
    """Indices of ``per_class`` items of every class, drawn with ``seed`` (sorted).

    Raises ConfigError when ``per_class`` is not positive or a class has fewer items."""
    if not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ConfigError(f"subset_per_class must be a positive integer, got {per_class!r}")
    targets = np.asarray(targets, dtype=np.int64)
    num_classes = int(targets.max()) + 1 if num_classes is None else num_classes
    counts = np.bincount(targets, minlength=num_classes)
    short = [(c, int(n)) for c, n in enumerate(counts) if n < per_class]
    if short:
        c, n = min(short, key=lambda cn: cn[1])
        raise ConfigError(
            f"{name}: subset_per_class={per_class} but class {c} has only {n} training images "
            f"({len(short)} classes have fewer than {per_class}); use subset_per_class <= "
            f"{int(counts.min())}")
    chosen = []
    for c in range(num_classes):
        members = np.flatnonzero(targets == c)
        # one permutation per (seed, class): smaller subsets are prefixes of larger ones
        order = np.random.default_rng([seed, c]).permutation(len(members))
        chosen.append(members[order[:per_class]])
    return sorted(int(i) for i in np.concatenate(chosen))


class ClassSubset(Subset):
    """A :class:`torch.utils.data.Subset` that keeps ``targets`` and ``classes``."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        super().__init__(dataset, list(indices))
        base = np.asarray(dataset.targets)
        self.targets = [int(t) for t in base[self.indices]]
        self.classes = list(getattr(dataset, "classes", []))
