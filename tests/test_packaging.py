"""What pyproject.toml declares matches what the code imports, and every extra imports once installed."""

from __future__ import annotations

import ast
import importlib
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: distribution name -> the module it installs (a requirement missing here fails the test: add it)
MODULE = {"numpy": "numpy", "scipy": "scipy", "torch": "torch", "trimesh": "trimesh", "embreex": "embreex",
          "scikit-learn": "sklearn", "hdbscan": "hdbscan", "pillow": "PIL", "tqdm": "tqdm", "laspy": "laspy", "transformers": "transformers",
          "safetensors": "safetensors", "huggingface-hub": "huggingface_hub", "pytest": "pytest",
          "pytest-xdist": "xdist",
          "hypothesis": "hypothesis", "ray": "ray", "spconv": "spconv", "lightning-fabric": "lightning_fabric"}
#: optional modules the code imports inside a try (an ImportError is handled where they are used)
NOT_REQUIRED = {"open3d", "laspy", "transformers", "safetensors", "huggingface_hub",
                "threadpoolctl", "matplotlib"}


def _dist(req: str) -> str:
    return re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def _imports(folder: Path) -> dict[str, set[str]]:
    """Top-level module -> files importing it (import statements and ``require("x")`` calls) in ``folder``."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in
                  ("require", "import_module") and node.args and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)):  # require("embreex.rtcore_scene", ...)
                names = [node.args[0].value]
            for n in names:
                found.setdefault(n.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_core_requirement_is_imported_and_every_import_declared():
    used = _imports(ROOT / "src")
    core = {_dist(r) for r in PYPROJECT["dependencies"]}
    extras = {_dist(r) for reqs in PYPROJECT["optional-dependencies"].values() for r in reqs}
    for dist in core:
        assert dist in MODULE, f"map {dist} to its module in MODULE"
        assert MODULE[dist] in used, f"{dist} is required but nothing under src/ imports {MODULE[dist]}"
    declared = {MODULE[d] for d in core | extras if d in MODULE}
    third_party = {m for m in used if m not in sys.stdlib_module_names and m != "crossdistill"}
    undeclared = third_party - declared - NOT_REQUIRED
    assert not undeclared, {m: sorted(used[m])[:3] for m in undeclared}


def test_dev_holds_every_extra():
    extras = PYPROJECT["optional-dependencies"]
    dev = {_dist(r) for r in extras["dev"]}
    for name, reqs in extras.items():
        assert {_dist(r) for r in reqs} <= dev, f"[dev] lacks part of [{name}]"


@pytest.mark.parametrize("extra", sorted(PYPROJECT["optional-dependencies"]))
def test_each_extra_imports(extra):
    for req in PYPROJECT["optional-dependencies"][extra]:
        module = importlib.import_module(MODULE[_dist(req)])
        if _dist(req) == "laspy" and "lazrs" in req:  # the LAZ backend the extra promises
            assert module.LazBackend.Lazrs.is_available()
