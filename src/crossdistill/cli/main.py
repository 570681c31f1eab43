"""`crossdistill` command line: one parser, one sub-command module per job.

Errors a user can act on (:class:`~crossdistill.errors.InputError`,
:class:`~crossdistill.errors.MissingDependencyError`) print one line on stderr and
exit with code 2; ``--debug`` shows the traceback instead. Ctrl-C prints "interrupted"
(exit 130) and SIGTERM "terminated" (exit 143), after the same clean-up of partial files.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence

from crossdistill.errors import InputError, MissingDependencyError, Terminated

# Sub-command modules register themselves through `add_parser(subparsers)`; each sets
# `func` on its parser to a callable taking the parsed namespace and returning an exit code.
_COMMAND_MODULES = (
    "crossdistill.cli.render_cmd",
    "crossdistill.cli.segment_cmd",
    "crossdistill.cli.select_cmd",
    "crossdistill.cli.view_cmd",
    "crossdistill.cli.name_cmd",
    "crossdistill.cli.pretrain_cmd",
    "crossdistill.cli.eval_cmd",
    "crossdistill.cli.teachers_cmd",
    "crossdistill.cli.models_cmd",
    "crossdistill.cli.distill_cmd",
    "crossdistill.cli.predict_cmd",
    "crossdistill.cli.discover_cmd",
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit code 2), like every other error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser (every installed sub-command), option bounds in the help."""
    import importlib

    from crossdistill.cli.common import finish_parser
    from crossdistill.cli.limits import annotate

    parser = _Parser(
        prog="crossdistill",
        description="Distil 2D foundation models into part segmentation where labels are scarce.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks on errors (accepted anywhere on the command line)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars or notes on stderr (accepted anywhere on the command line)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads of the numeric work (torch, BLAS); default: $CROSSDISTILL_THREADS, else "
                             "every available CPU (idle threads sleep, so a busy machine is not slowed further)")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # sub-command not part of this build
                continue
            raise
        module.add_parser(sub)
    annotate(parser)
    finish_parser(parser)
    return parser


def _version() -> str:
    from crossdistill import __version__

    return f"crossdistill {__version__}"


def run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Call a sub-command, turning user-facing errors into one line + exit code 2.

    Option values are checked against :mod:`crossdistill.cli.limits` first, then ``--device``
    (:func:`crossdistill.engine.devices.resolve_device`), then the output location ``-o``
    (:func:`crossdistill.engine.outputs.check_output_option`): all before any work. With ``--quiet``
    the libraries' own progress bars are off too (:func:`crossdistill.cli.common.quiet_libraries`).
    """
    from crossdistill.cli.common import quiet_libraries
    from crossdistill.cli.limits import check_args
    from crossdistill.engine.devices import resolve_device
    from crossdistill.engine.outputs import check_output_option

    try:
        check_args(args)
        if isinstance(getattr(args, "device", None), str):  # one check of --device for every command
            args.device = resolve_device(args.device)
        check_output_option(getattr(args, "_command_path", None), getattr(args, "output", None))
        if getattr(args, "threads", None) is not None or os.environ.get("CROSSDISTILL_THREADS", "").strip():
            from crossdistill.engine.threads import configure_threads

            try:
                configure_threads(getattr(args, "threads", None))
            except ValueError as exc:
                raise InputError(str(exc)) from None
        with quiet_libraries() if getattr(args, "quiet", False) else contextlib.nullcontext():
            return int(func(args) or 0)
    except (InputError, MissingDependencyError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - last line of defence for the user
        if args.debug or os.environ.get("CROSSDISTILL_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (re-run with --debug for details)", file=sys.stderr)
        return 1


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def _on_sigterm() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated`: one line, exit 143, partial files removed (as Ctrl-C)."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM on this platform
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `crossdistill` console script."""
    with _on_sigterm():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if not args.debug:
        return run(args.func, args)
    before = os.environ.get("CROSSDISTILL_DEBUG")
    os.environ["CROSSDISTILL_DEBUG"] = "1"  # library code that isolates failures per item re-raises them
    try:
        return run(args.func, args)
    finally:
        if before is None:
            os.environ.pop("CROSSDISTILL_DEBUG", None)
        else:
            os.environ["CROSSDISTILL_DEBUG"] = before


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
