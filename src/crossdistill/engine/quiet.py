"""Quiet libraries: no progress bar or info log from huggingface_hub or transformers (``--quiet``,
``crossdistill.segment(progress=False)``); crossdistill's own bars follow its ``progress`` arguments."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["quiet_libraries"]

_QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """While inside, huggingface_hub and transformers print no progress bar or info log.

    huggingface_hub is imported first (it is light), so that it reads the user's environment, and
    its bars are switched off and back on; transformers' verbosity comes from an environment variable
    when it is first imported inside (it is heavy), from its switch otherwise. On the way out the
    variables are restored and both libraries are put back as they were, or, when first imported
    inside, as the restored environment would have set them up.
    """
    saved = {k: os.environ.get(k) for k in _QUIET_ENV}
    with contextlib.suppress(ImportError):
        import huggingface_hub.utils  # noqa: F401 - reads HF_HUB_DISABLE_PROGRESS_BARS as the user set it
    hub_before = _hub_bars_on() if "huggingface_hub" in sys.modules else None
    tf_before = _tf_state() if "transformers" in sys.modules else None
    os.environ.update(_QUIET_ENV)
    if hub_before is not None:
        from huggingface_hub import utils as hub_utils

        hub_utils.disable_progress_bars()
    if tf_before is not None:
        from transformers.utils import logging as hf_logging

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
        bars_default = not os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")
        if hub_before:
            from huggingface_hub import utils as hub_utils

            hub_utils.enable_progress_bars()
        if "transformers" in sys.modules:
            from transformers.utils import logging as hf_logging

            verbosity, bars = tf_before if tf_before is not None else (
                hf_logging.log_levels.get(saved["TRANSFORMERS_VERBOSITY"] or "warning", hf_logging.WARNING),
                bars_default)
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()


def _hub_bars_on() -> bool:
    from huggingface_hub import utils as hub_utils

    return not hub_utils.are_progress_bars_disabled()


def _tf_state() -> tuple[int, bool]:
    from transformers.utils import logging as hf_logging

    return hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
