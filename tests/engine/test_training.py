"""The training engine: DDP on 2 CPU processes, kill -9 then resume, gradient accumulation, scalars."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from crossdistill.engine.data import SampledBatches
from crossdistill.engine.scalars import read_scalars
from crossdistill.engine.training import CHECKPOINT, TrainConfig, fit
from crossdistill.errors import InputError

JOB = Path(__file__).with_name("train_job.py")
sys.path.insert(0, str(JOB.parent))
import train_job  # noqa: E402  (the job, run in this process where no kill or second rank is needed)


def _run(*args: str, torchrun: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[2] / "src"))
    cmd = [sys.executable]
    if torchrun:
        cmd += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(torchrun)]
    return subprocess.run([*cmd, str(JOB), *args], env=env, capture_output=True, text=True, timeout=240)


def _params_close(a: dict, b: dict, atol: float) -> bool:
    return all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


def test_two_process_ddp_matches_one_process(tmp_path):
    pytest.importorskip("lightning_fabric", reason="DDP goes through lightning-fabric ([train] extra)")
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    train_job.main([str(one)])
    r2 = _run(str(two), torchrun=2)
    assert r2.returncode == 0, r2.stderr[-2000:]
    a, b = torch.load(one), torch.load(two)
    assert b["world"] == 2 and a["world"] == 1
    # same global batch of 8 (4 per rank): the same examples each step, gradients averaged
    assert torch.allclose(a["losses"], b["losses"], atol=1e-5, rtol=0), (a["losses"], b["losses"])
    assert _params_close(a["params"], b["params"], 1e-5)


def test_kill9_then_resume_gives_the_uninterrupted_state(tmp_path):
    full, resumed = tmp_path / "full.pt", tmp_path / "resumed.pt"
    train_job.main([str(full), "--run-dir", str(tmp_path / "a"), "--jitter"])
    killed = _run(str(resumed), "--run-dir", str(tmp_path / "b"), "--jitter", "--kill-at", "7")
    assert killed.returncode == -signal.SIGKILL
    assert not resumed.exists() and (tmp_path / "b" / CHECKPOINT).is_file()
    assert not [p for p in (tmp_path / "b").iterdir() if p.name.startswith(".")], "a temp file was left"
    train_job.main([str(resumed), "--run-dir", str(tmp_path / "b"), "--jitter"])
    a, b = torch.load(full), torch.load(resumed)
    assert b["start"] == 6 and a["start"] == 0  # checkpoints every 3 steps: step 7 died, 6 was saved
    assert all(torch.equal(a["params"][k], b["params"][k]) for k in a["params"])
    assert torch.equal(a["losses"], b["losses"])
    rows = read_scalars(tmp_path / "b" / "scalars.csv")
    assert rows["step"].tolist() == list(range(12))  # each step logged once despite the kill
    assert np.allclose(rows["loss"], b["losses"].numpy(), atol=1e-6)
    assert (tmp_path / "b" / "loss.png").stat().st_size > 0


def _toy(n: int = 32):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    return list(zip(x, x.sum(1, keepdim=True).sin()))


def _train(batch: int, accumulate: int, steps: int = 6, **kw):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)

    def step(model, b, i):
        xb, yb = b
        return ((model(xb) - yb) ** 2).mean()

    return fit(net, opt, step, TrainConfig(steps=steps, accumulate=accumulate, progress=False, **kw),
               data=SampledBatches(_toy(), batch, seed=3))


def test_gradient_accumulation_equals_a_bigger_batch():
    big, acc = _train(8, 1), _train(4, 2)
    assert np.allclose(big.losses, acc.losses, atol=1e-6)
    for p, q in zip(big.model.parameters(), acc.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    other = _train(4, 1)  # and it is not a no-op: the smaller batch trains differently
    assert not np.allclose(big.losses, other.losses, atol=1e-4)


def test_finished_run_resumes_to_nothing_and_other_settings_are_refused(tmp_path):
    first = _train(8, 1, run_dir=tmp_path, run_key="k1")
    again = _train(8, 1, run_dir=tmp_path, run_key="k1")
    assert again.start_step == 6 and np.array_equal(first.losses, again.losses)
    for p, q in zip(first.model.parameters(), again.model.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(InputError, match="other settings"):
        _train(8, 1, run_dir=tmp_path, run_key="k2")


def test_skipped_steps_and_bad_settings():
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = net.weight.detach().clone()
    res = fit(net, opt, lambda m, b, i: None, TrainConfig(steps=3, progress=False))
    assert np.isnan(res.losses).all() and torch.equal(before, net.weight)
    with pytest.raises(InputError):
        TrainConfig(steps=3, accumulate=0)
    with pytest.raises(InputError, match="precision"):
        fit(net, opt, lambda m, b, i: None, TrainConfig(steps=1, precision="8"))
    with pytest.raises(InputError, match="multiple"):
        next(SampledBatches(_toy(), 3).batches(0, __import__("crossdistill.engine.distributed",
                                                              fromlist=["World"]).World(0, 2, 0, 2)))


def test_a_per_process_fit_under_torchrun_stays_in_its_process(monkeypatch):
    from crossdistill.engine.distributed import LocalBackend, make_backend

    for k, v in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(k, v)
    assert isinstance(make_backend("cpu", "32", distributed=False), LocalBackend)
    res = _train(8, 1, distributed=False)  # no process group is created, the whole batch is used
    assert res.world.size == 1 and np.isfinite(res.losses).all()
