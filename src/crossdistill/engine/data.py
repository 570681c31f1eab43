"""Data sources for :func:`crossdistill.engine.training.fit` that share every global batch out between ranks.

:class:`SampledBatches` serves a map-style dataset (anything with ``__len__`` and
``__getitem__``) through torch's ``DistributedSampler``: each epoch is one seeded permutation
(``seed + epoch``), rank ``r`` of ``W`` takes every ``W``-th index of it, and global
micro-batch ``j`` is the ``j``-th block of ``batch_size`` indices of the permutation. So with
the same global ``batch_size`` a run on 1 and on ``W`` processes sees the same examples in
every step, and a resumed run starts where the killed one stopped without reading what it skips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DistributedSampler
from torch.utils.data._utils.collate import default_collate

from crossdistill.engine.distributed import World
from crossdistill.errors import InputError

__all__ = ["SampledBatches"]


class SampledBatches:
    """Micro-batches of a map-style dataset, shuffled per epoch and shared out between ranks.

    Args:
        dataset: ``len(dataset)`` examples, ``dataset[i]`` one example.
        batch_size: examples per *global* micro-batch (all ranks together); must be a multiple
            of the number of ranks.
        seed: seeds the permutation of each epoch (``seed + epoch``).
        shuffle: permute each epoch (else dataset order).
        collate: turns a list of examples into a batch (torch's ``default_collate``).

    The last incomplete global batch of an epoch is dropped (every step sees ``batch_size``
    examples).
    """

    def __init__(self, dataset: Sequence[Any], batch_size: int, seed: int = 0, shuffle: bool = True,
                 collate: Callable[[list[Any]], Any] = default_collate) -> None:
        if batch_size < 1 or len(dataset) < batch_size:
            raise InputError(f"a batch of {batch_size} needs at least that many examples (have {len(dataset)})")
        self.dataset, self.batch_size, self.seed, self.shuffle, self.collate = dataset, batch_size, seed, shuffle, collate

    @property
    def per_epoch(self) -> int:
        """Global micro-batches per epoch."""
        return len(self.dataset) // self.batch_size

    def batches(self, start: int, world: World) -> Iterator[Any]:
        """Rank ``world.rank``'s share of global micro-batches ``start, start + 1, ...`` (endless)."""
        if self.batch_size % world.size:
            raise InputError(f"the global batch ({self.batch_size}) must be a multiple of the "
                             f"number of processes ({world.size})")
        local = self.batch_size // world.size
        # torch's sampler: the epoch's permutation (seed + epoch, the same on every rank), then every
        # W-th index from the rank's offset; so rank r's k-th block of `local` indices is its share of
        # the permutation's k-th block of `batch_size` indices, whatever W is
        sampler = DistributedSampler(self.dataset, num_replicas=world.size, rank=world.rank,
                                     shuffle=self.shuffle, seed=self.seed, drop_last=True)
        epoch, j = divmod(start, self.per_epoch)
        while True:
            sampler.set_epoch(epoch)
            order = list(sampler)
            for k in range(j, self.per_epoch):
                yield self.collate([self.dataset[i] for i in order[k * local:(k + 1) * local]])
            epoch, j = epoch + 1, 0
