"""Quiet libraries: no progress bar or info log from huggingface_hub, transformers or tqdm (``--quiet``,
``crossdistill.segment(progress=False)``)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["quiet_libraries"]

_QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",
              "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", "TQDM_DISABLE": "1"}


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """While inside, huggingface_hub / transformers / tqdm print no progress bar or info log (``--quiet``):
    environment variables for modules imported later, their switches for those already imported; all
    restored on the way out."""
    saved = {k: os.environ.get(k) for k in _QUIET_ENV}
    os.environ.update(_QUIET_ENV)
    hub_was_on = tf_state = None
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import utils as hub_utils

        hub_was_on = not hub_utils.are_progress_bars_disabled()
        hub_utils.disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        tf_state = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if hub_was_on:
            from huggingface_hub import utils as hub_utils

            hub_utils.enable_progress_bars()
        if tf_state is not None:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity(tf_state[0])
            if tf_state[1]:
                hf_logging.enable_progress_bar()
