"""`crossdistill teachers`: every 2D teacher backend, what it needs, and whether it can run here."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teachers", help="list 2D teacher backends and whether their weights are found",
                       description="List every 2D teacher backend, what it needs, and whether its weights are "
                                   "found locally ($CROSSDISTILL_MODELS/<hub id> or the Hugging Face cache). "
                                   "Never touches the network.")
    p.set_defaults(func=run_teachers)


def run_teachers(args: argparse.Namespace) -> int:
    from crossdistill.teachers.registry import teacher_status

    rows = teacher_status()
    width = max(len(r.name) for r in rows)
    for r in rows:
        state = "ready" if r.available else "missing"
        source = r.where or r.hint or "no weights needed"
        print(f"{r.name:<{width}}  {r.kind:<8}  {state:<7}  {r.description}")
        print(f"{'':<{width}}  {'':<8}  {'':<7}  {r.hub_id or '-'}: {source}")
    return 0
