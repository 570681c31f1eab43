"""``--ray [ADDRESS]``: a batch's items as Ray tasks, on a local Ray instance or a cluster.

Each item is one task that runs :func:`crossdistill.engine.items.attempt`, the function every
other runner uses, so an item's outputs do not depend on the runner (given the same thread
count: ``docs/reliability.md``). The claims of :mod:`crossdistill.engine.claims` still decide
who does an item, so Ray runs, plain runs and job-array shards may share one output folder;
on a cluster that folder must be one file system every node sees (as for job arrays).

* Local (no address): a Ray instance with ``workers x threads`` CPUs is started for the run and
  shut down after it; ``workers`` tasks run at once, each with ``threads`` numeric threads.
* ``ADDRESS`` (``auto``, ``ray://host:10001``, ``host:6379``): tasks go to that cluster, each
  asking for ``threads`` CPUs; ``workers`` (when above 1) caps the tasks in flight, else the
  cluster's CPUs do. The job is put in Ray's object store once, not sent with every task.

Isolation: an item's error comes back as a failed outcome; a task whose worker process dies
(killed, out of memory) is run once more by Ray, and reported failed if it dies again (its
partial folder removed), while the other items go on. Ctrl-C or SIGTERM cancels the tasks in
flight (their workers are killed, so their claims are released) and removes their partial folders.

Needs the ``[scale]`` extra (``pip install "crossdistill[scale]"``).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence

from crossdistill.errors import InputError, require
from crossdistill.engine.items import FAILED, Job, Outcome, Task, attempt, discard_orphan

__all__ = ["LOCAL", "import_ray", "check_address", "run_in_ray"]

#: ``--ray`` given without an address: start a local Ray instance for this run
LOCAL = "local"

DIED = "Ray worker process died (killed, or out of memory) while doing this item, also when retried"


def import_ray():
    """The ``ray`` module, or a :class:`~crossdistill.errors.MissingDependencyError` naming the extra."""
    return require("ray", "scale", "--ray")


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast (InputError, one line) when a ``host:port`` or ``ray://host:port`` address does not
    answer; Ray itself would retry for minutes. :data:`LOCAL` and ``auto`` are not probed."""
    if address in (LOCAL, "auto"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(f"--ray {address}: give a Ray address as host:port, ray://host:port or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise InputError(f"--ray {address}: no Ray cluster answers there ({exc.strerror or exc})") from None


def _ray_attempt(task: Task, job: Job, threads: int) -> Outcome:
    """One item inside a Ray worker: this process's numeric threads, then the shared item runner."""
    from crossdistill.engine.threads import configure_threads

    configure_threads(threads)
    return attempt(task, job)


def _start(ray, address: str, cpus: int) -> bool:
    """Connect to ``address`` or start a local instance with ``cpus`` CPUs; True when this call started it."""
    if ray.is_initialized():
        return False
    quiet = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                 configure_logging=True)
    if address == LOCAL:
        ray.init(num_cpus=cpus, **quiet)
        return True
    check_address(address)
    quiet.pop("include_dashboard")  # a setting of the head node, not of a client
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise InputError(f"--ray {address}: cannot connect ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    return True


def run_in_ray(tasks: Sequence[Task], job: Job, workers: int, threads: int,
               on_result: Callable[[Task, Outcome], None], address: str = LOCAL) -> None:
    """Run ``tasks`` as Ray tasks, ``on_result`` (in this process) getting each outcome as it arrives.

    Args:
        tasks: the items.
        job: does one item (pickled once into Ray's object store).
        workers: tasks in flight at once (local: also sizes the instance); on a cluster, 1 means
            as many as the cluster has CPUs for.
        threads: numeric threads (and Ray CPUs) per task.
        on_result: called once per task.
        address: :data:`LOCAL` or a Ray cluster address.
    """
    ray = import_ray()
    started = _start(ray, address, max(1, workers) * max(1, threads))
    try:
        if address != LOCAL and workers <= 1:
            workers = max(1, int(ray.cluster_resources().get("CPU", threads) // max(1, threads)))
        # Ray sets a task's OMP_NUM_THREADS to its CPUs; _ray_attempt sets torch's and BLAS's threads
        remote = ray.remote(max_retries=1, retry_exceptions=False)(_ray_attempt).options(num_cpus=threads)
        job_ref = ray.put(job)
        _drain(ray, remote, job_ref, list(tasks), workers, threads, on_result)
    finally:
        if started:
            ray.shutdown()


def _drain(ray, remote, job_ref, queue: list[Task], workers: int, threads: int,
           on_result: Callable[[Task, Outcome], None]) -> None:
    """Keep ``workers`` tasks in flight until every one has reported."""
    running: dict = {}
    queue.reverse()  # pop() from the end takes the tasks in their given order
    try:
        while queue or running:
            while queue and len(running) < workers:
                task = queue.pop()
                running[remote.remote(task, job_ref, threads)] = task
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                task = running.pop(ref)
                on_result(task, _outcome(ray, ref, task))
    except BaseException:  # Ctrl-C, SIGTERM, or a bug here: stop the items in flight, clean their folders
        for ref in running:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or its worker already gone
                pass
        for ref, task in running.items():
            try:
                ray.get(ref, timeout=60)
            except Exception:  # noqa: BLE001 - cancelled: expected
                pass
            discard_orphan(task)
        raise


def _outcome(ray, ref, task: Task) -> Outcome:
    """The task's outcome; a worker death (after Ray's retry) becomes a FAILED outcome."""
    try:
        return ray.get(ref)
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError,
            ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError):
        discard_orphan(task)
        return Outcome(FAILED, DIED, f"error: {task.name}: {DIED}")
    except ray.exceptions.RayTaskError as exc:  # a bug escaping attempt(): keep the others going
        if os.environ.get("CROSSDISTILL_DEBUG"):
            raise
        first = str(exc.cause if getattr(exc, "cause", None) else exc).splitlines()[0]
        discard_orphan(task)
        return Outcome(FAILED, f"internal error: {first}",
                       f"internal error: {task.name}: {first} (re-run with --debug for details)")
