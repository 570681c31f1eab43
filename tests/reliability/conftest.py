"""Makes the bad-input corpus generator (tests/data/make_bad_inputs.py) importable as ``make_bad_inputs``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if "make_bad_inputs" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("make_bad_inputs",
                                                   Path(__file__).parents[1] / "data" / "make_bad_inputs.py")
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["make_bad_inputs"] = _module
    _spec.loader.exec_module(_module)
