"""The ``taskbalance`` command.

``taskbalance bench`` compares methods on the built-in problems (by default every
method on ``noisy-scales`` over 3 seeds: losses 10⁴ apart in scale, where balancing
matters, and a known noise std against which the learned σ can be checked)
and writes JSON, CSV, a Markdown report and PNG plots; ``taskbalance data`` lists
which problems' data is on this machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .bench.problems import ARCHS, PROBLEMS, get_problem
from .registry import methods

__all__ = ["main"]


def _comma_list(check: Callable[[str], object]) -> Callable[[str], tuple[str, ...]]:
    """An argparse type: comma-separated names, each accepted by ``check``."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(v.strip() for v in text.split(",") if v.strip())
        for n in names:
            try:
                check(n)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from exc
        return names

    return parse


def _method_spec(text: str) -> object:
    from .bench.runner import parse_method

    return parse_method(text)


_names = _comma_list(_method_spec)
_problems = _comma_list(get_problem)


def _positive_int(what: str) -> Callable[[str], int]:
    """An argparse type: an integer >= 1."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer >= 1, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{what} must be an integer >= 1, got {value}")
        return value

    return parse


def _device(text: str) -> str:
    """An argparse type: a torch device that exists on this machine."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(
            f"--device {text}: this torch build or machine has no CUDA device; use --device cpu"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"--device {text}: only {torch.cuda.device_count()} CUDA devices")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"--device {text}: MPS is not available here; use --device cpu")
    return text


def _writable(out: str) -> str | None:
    """Why ``out`` cannot hold the bench's results, or ``None`` if it can."""
    import tempfile
    from pathlib import Path

    root = Path(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
        # a probe of its own name: two runs may resume into the same folder at once
        with tempfile.NamedTemporaryFile(dir=root, prefix=".taskbalance-write-test-"):
            pass
    except OSError as exc:
        return f"--out {out}: cannot write there ({exc.strerror or exc})"
    return None


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def resolve(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The problems and methods a ``bench`` call runs, defaults filled in.

    Without ``--grid``: noisy-scales (every problem with ``--suite full``) and every
    method. With ``--grid``: every grid pair and the learned methods of
    :data:`taskbalance.bench.grid.LEARNED`.
    """
    from .bench.grid import LEARNED, PAIRS

    if args.grid:
        return args.problems or tuple(PAIRS), args.methods or LEARNED
    if args.suite == "full":
        return tuple(PROBLEMS), args.methods or tuple(methods())
    return args.problems or ("noisy-scales",), args.methods or tuple(methods())


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options ``run_bench`` and ``run_grid`` take alike, from the command line."""
    return {
        "epochs": args.epochs,
        "device": args.device,
        "quick": args.quick,
        "data_path": args.data_dir,
        "progress": not args.no_progress,
    }


def _grid(args: argparse.Namespace, problems: tuple[str, ...], names: tuple[str, ...]) -> int:
    from .bench.grid import grid_markdown, run_grid, write_grid_reports

    start = time.perf_counter()
    results = run_grid(list(problems), list(names), list(range(args.seeds)), args.out, **_run_options(args))
    paths = write_grid_reports(results, args.out, plots=not args.no_plots)
    print(grid_markdown(results))
    print(f"wrote {', '.join(p.name for p in paths)} into {args.out} ({time.perf_counter() - start:.0f}s)")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench.report import terminal_table, write_reports
    from .bench.runner import run_bench

    problems, names = resolve(args)
    if args.grid:
        from .bench.grid import PAIRS

        wrong = [p for p in problems if p not in PAIRS]
        if wrong:
            print(f"--grid runs on the pairs {', '.join(PAIRS)}; not on {', '.join(wrong)}", file=sys.stderr)
            return 2
    missing = [
        (p, where) for p in problems for ok, where in [get_problem(p).available(args.data_dir)] if not ok
    ]
    if missing:
        for p, why in missing:
            print(f"{p}: {why}", file=sys.stderr)
        return 2
    if args.arch is not None:
        fixed = [p for p in problems if not get_problem(p).allows_arch]
        if fixed:
            print(
                f"--arch applies to census and mmoe-synthetic; {', '.join(fixed)} run their own model",
                file=sys.stderr,
            )
            return 2
    unwritable = _writable(args.out)
    if unwritable:
        print(unwritable, file=sys.stderr)
        return 2
    if args.grid:
        return _grid(args, problems, names)
    from .bench.report import plots_available

    skip_plots = not args.no_plots and not plots_available()
    start = time.perf_counter()
    seeds = list(range(args.seeds))
    results = run_bench(problems, names, seeds, args.out, arch=args.arch, **_run_options(args))
    paths = write_reports(results, args.out, plots=not args.no_plots)
    print(terminal_table(results))
    plots = "" if args.no_plots or skip_plots else " and the plots"
    print(
        f"\nwrote {paths['json']}, {paths['csv']}, {paths['markdown']}{plots} into {args.out} "
        f"({time.perf_counter() - start:.0f}s)"
    )
    if skip_plots:
        print(
            "plots skipped (loss curves, weights, Δm%, σ): matplotlib is not installed; "
            "pip install 'taskbalance[bench]' to get them"
        )
    return 0


def _data(args: argparse.Namespace) -> int:
    rows = [["problem", "available", "data"]]
    for name in PROBLEMS:
        ok, where = get_problem(name).available(args.data_dir)
        rows.append([name, "yes" if ok else "no", where])
    print(_table(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``taskbalance`` command."""
    parser = argparse.ArgumentParser(
        prog="taskbalance", description="Balance the losses of multi-task networks."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="compare methods on built-in multi-task problems")
    bench.add_argument(
        "--problems",
        type=_problems,
        default=None,
        help=f"comma-separated problems (default: noisy-scales; available: {', '.join(PROBLEMS)}); "
        "with --grid, the pairs to run (default: all)",
    )
    bench.add_argument(
        "--suite", choices=("default", "full"), default="default", help="'full' runs every problem"
    )
    bench.add_argument(
        "--grid",
        action="store_true",
        help="static weights over a grid against the learned methods, on two-task pairs "
        "(writes grid.md, grid.json and grid.png)",
    )
    bench.add_argument(
        "--methods",
        type=_names,
        default=None,
        help="comma-separated method names, each optionally with options: famo:gamma=0.001, "
        "static:weights=0.3+0.7 (default: every method with its defaults; with --grid, "
        "equal and the uncertainty family, famo, nash-mtl, upgrad)",
    )
    bench.add_argument(
        "--seeds", type=_positive_int("--seeds"), default=3, help="number of seeds (default: 3)"
    )
    bench.add_argument(
        "--epochs", type=_positive_int("--epochs"), default=None, help="epochs (default: the problem's own)"
    )
    bench.add_argument(
        "--arch",
        default=None,
        choices=ARCHS,
        help="architecture for census / mmoe-synthetic (default: the problem's own)",
    )
    bench.add_argument("--device", type=_device, default="cpu", help="torch device (default: cpu)")
    bench.add_argument("--out", default="bench-out", help="output folder; re-running resumes it")
    bench.add_argument("--data-dir", default=None, help="where the data files are, if not installed")
    bench.add_argument("--quick", action="store_true", help="tiny data (smoke test)")
    bench.add_argument("--no-plots", action="store_true")
    bench.add_argument("--no-progress", action="store_true")
    bench.set_defaults(func=_bench)
    data = sub.add_parser("data", help="list the problems whose data is on this machine")
    data.add_argument("--data-dir", default=None)
    data.set_defaults(func=_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``taskbalance`` command.

    Example:
        >>> main(["data"])  # doctest: +ELLIPSIS
        problem ...
        0
    """
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
