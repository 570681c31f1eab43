"""``--shard I/N``: a deterministic split of a batch's items for job arrays.

Shards are 0-based (``0/4`` .. ``3/4``). The items are sorted by output name and item ``k`` of
that list belongs to shard ``k % N``, so every item is in exactly one shard, shards differ in
size by at most one, and the split is the same on every machine that sees the same files.

Example:
    >>> s = parse_shard("1/3")
    >>> [name for name, _ in s.select([(n, None) for n in "edcba"])]
    ['b', 'e']
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Shard", "parse_shard", "shard_arg"]

T = TypeVar("T", bound=tuple)

_FORM = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"a shard is I/N with 0 <= I < N (0-based), got {self.index}/{self.count}")

    def select(self, items: Sequence[T]) -> list[T]:
        """This shard's share of ``items`` ((name, ...) tuples), in name order."""
        ordered = sorted(items, key=lambda item: item[0])
        return [item for k, item in enumerate(ordered) if k % self.count == self.index]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"I/N"`` -> :class:`Shard`.

    Raises:
        ValueError: not two whole numbers, or not 0 <= I < N.
    """
    m = _FORM.fullmatch(text)
    if m is None:
        raise ValueError(f"a shard is I/N with 0 <= I < N (0-based), e.g. 0/4; got {text!r}")
    return Shard(int(m.group(1)), int(m.group(2)))


def shard_arg(text: str) -> Shard:
    """:func:`parse_shard` as an argparse ``type`` (a bad value is argparse's one-line usage error, exit 2)."""
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
