"""Thread counts and passive OpenMP waits (engine/threads.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from crossdistill.engine.threads import ENV, available_cpus, configure_threads, thread_count


def test_thread_count_from_argument_environment_or_cpus(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert thread_count() == available_cpus()
    assert thread_count(3) == 3
    monkeypatch.setenv(ENV, "2")
    assert thread_count() == 2 and thread_count(1) == 1  # the argument wins
    monkeypatch.setenv(ENV, "many")
    with pytest.raises(ValueError, match=ENV):
        thread_count()
    with pytest.raises(ValueError):
        thread_count(0)


def test_configure_threads_sets_torch(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv(ENV, raising=False)
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_importing_crossdistill_makes_openmp_waits_passive_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
    code = ("import sys, os; import crossdistill; assert 'torch' not in sys.modules; "
            "import torch; print(os.environ['OMP_WAIT_POLICY'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # a user's choice is kept
    out = subprocess.run([sys.executable, "-c", "import crossdistill, os; print(os.environ['OMP_WAIT_POLICY'])"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"


def test_cli_threads_flag_and_environment(tmp_path, capsys, monkeypatch):
    import torch

    from crossdistill.cli.main import main

    before = torch.get_num_threads()
    try:
        assert main(["--threads", "0", "render", "--demo", "-o", str(tmp_path / "r")]) == 2
        assert "at least 1" in capsys.readouterr().err
        monkeypatch.setenv(ENV, "many")
        assert main(["render", "--demo", "-o", str(tmp_path / "r2")]) == 2
        assert ENV in capsys.readouterr().err
        monkeypatch.delenv(ENV)
        assert main(["render", "--demo", "-o", str(tmp_path / "r3"), "--views", "6", "--size", "32", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_renderer_follows_the_chosen_thread_count(monkeypatch):
    import torch

    from crossdistill.render._threads import cpu_count

    monkeypatch.setenv(ENV, "2")  # records the variable's state: configure_threads' setting is undone after
    monkeypatch.delenv(ENV)
    assert cpu_count() == available_cpus()
    before = torch.get_num_threads()
    try:
        configure_threads(1)  # --threads 1: the view threads follow too
        assert os.environ[ENV] == "1" and cpu_count() == 1
    finally:
        torch.set_num_threads(before)
