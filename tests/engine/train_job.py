"""A small training run through the engine, started as its own process by the engine tests.

``python train_job.py OUT [--run-dir D] [--kill-at S] [--accumulate A] [--batch B] [--steps N]``
trains a 2-layer MLP on fixed synthetic regression data with
:class:`crossdistill.engine.data.SampledBatches` and writes, from rank 0, ``OUT`` (a torch file
with the loss curve and the final parameters). Under ``torchrun`` it is one rank of a DDP job.
``--kill-at S`` sends SIGKILL to itself in step S (after the checkpoints before it).
"""

from __future__ import annotations

import argparse
import os
import signal

import torch

torch.set_num_threads(1)

from crossdistill.engine.data import SampledBatches  # noqa: E402
from crossdistill.engine.training import TrainConfig, fit  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Run the job with command-line arguments ``argv`` (the process's own when None)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--kill-at", type=int, default=-1)
    ap.add_argument("--accumulate", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--jitter", action="store_true", help="add noise drawn from a checkpointed generator")
    args = ap.parse_args(argv)
    g = torch.Generator().manual_seed(123)
    x = torch.randn(64, 5, generator=g)
    y = (x[:, :1] * 2 - x[:, 1:2]).tanh() + 0.1 * torch.randn(64, 1, generator=g)
    data = SampledBatches(list(zip(x, y)), args.batch, seed=7)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=args.steps)
    noise = torch.Generator().manual_seed(5)

    def step(model, batch, i):
        if i == args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        xb, yb = batch
        jitter = 1e-3 * torch.randn(xb.shape, generator=noise) if args.jitter else 0.0  # must resume too
        return {"loss": ((model(xb + jitter) - yb) ** 2).mean(), "abs": (model(xb) - yb).abs().mean()}

    res = fit(net, opt, step, TrainConfig(steps=args.steps, accumulate=args.accumulate, run_dir=args.run_dir,
                                          checkpoint_every=3, progress=False, run_key="job"),
              scheduler=sched, data=data, rngs={"noise": noise})
    if res.world.is_main:
        torch.save({"losses": torch.from_numpy(res.losses), "params": {k: v.detach().clone() for k, v in
                                                                        res.model.state_dict().items()},
                    "start": res.start_step, "world": res.world.size}, args.out)


if __name__ == "__main__":
    main()
