"""Fixtures of the teacher tests: a small synthetic Views, tiny tokenizers and models, call counters.

The builders live in :mod:`crossdistill.teachers.testing` (shared with ``bench/teachers.py``);
every model is built from a tiny random config; nothing touches a hub.
"""

from __future__ import annotations

import pytest

from crossdistill.teachers import testing
from crossdistill.teachers.testing import PART_NAMES, CallCounter, make_views
from crossdistill.types import Views

__all__ = ["PART_NAMES", "CallCounter", "make_views", "check_cache_hit"]


@pytest.fixture
def views() -> Views:
    return make_views()


def check_cache_hit(call, counted_module):
    """Call twice through a cached teacher; the model must run the first time only."""
    counter = CallCounter(counted_module)
    try:
        first = call()
        n_first = counter.n
        assert n_first > 0
        second = call()
        assert counter.n == n_first, "cached teacher called the model again"
    finally:
        counter.remove()
    return first, second


# --------------------------------------------------------------------------- tokenizers and tiny models
# Built once per session (seeded); no download anywhere.


@pytest.fixture(scope="session")
def clip_tokenizer():
    return testing.clip_tokenizer()


@pytest.fixture(scope="session")
def bert_tokenizer():
    return testing.bert_tokenizer()


@pytest.fixture(scope="session")
def tiny_dinov2():
    return testing.tiny_dinov2()


@pytest.fixture(scope="session")
def tiny_sam():
    return testing.tiny_sam()


@pytest.fixture(scope="session")
def tiny_clipseg(clip_tokenizer):
    return testing.tiny_clipseg(clip_tokenizer)


@pytest.fixture(scope="session")
def tiny_owlv2(clip_tokenizer):
    return testing.tiny_owlv2(clip_tokenizer)


@pytest.fixture(scope="session")
def tiny_grounding_dino():
    return testing.tiny_grounding_dino()


@pytest.fixture(scope="session")
def tiny_mask2former():
    return testing.tiny_mask2former()
