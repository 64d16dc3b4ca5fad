"""The ``taskbalance`` command.

``taskbalance bench`` trains a shared MLP on the ``noisy-tasks`` problem (regression
tasks of known noise std and a classifier with label noise) with each method and
prints the σ each uncertainty method learned against the true σ.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .bench.noisy import NoisyResult, make_noisy_tasks, train_noisy
from .registry import get_method

__all__ = ["main"]

DEFAULT_METHODS = ("equal", "uw", "uw-simplified", "uw-revised")


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"noise stds must be positive, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    for n in names:
        try:
            get_method(n)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    return names


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(results: list[NoisyResult], noise_stds: Sequence[float], label_noise: float) -> str:
    """The terminal table: true σ, held-out residual std and learned σ per method."""
    methods = [r.method for r in results]
    rows = [["task", "true σ", f"resid. std ({results[0].method})", *[f"σ {m}" for m in methods]]]
    first = results[0]
    for std in noise_stds:
        task = f"reg_{std:g}"
        rows.append(
            [
                task,
                f"{std:g}",
                f"{first.test_residual_std[task]:.3f}",
                *[f"{r.learned_sigma[task]:.3f}" if task in r.learned_sigma else "-" for r in results],
            ]
        )
    rows.append(
        [
            "cls",
            f"flip {label_noise:g}",
            "-",
            *[f"{r.learned_sigma['cls']:.3f}" if "cls" in r.learned_sigma else "-" for r in results],
        ]
    )
    acc = ["accuracy", "", "", *[f"{r.test_accuracy:.3f}" for r in results]]
    resid = [
        "mean resid. std",
        "",
        "",
        *[f"{sum(r.test_residual_std.values()) / len(r.test_residual_std):.3f}" for r in results],
    ]
    return _table([*rows, acc, resid])


def _bench(args: argparse.Namespace) -> int:
    data = make_noisy_tasks(args.noise, args.label_noise, seed=args.seed)
    results = []
    start = time.perf_counter()
    for i, method in enumerate(args.methods, 1):
        t0 = time.perf_counter()
        results.append(train_noisy(method, data, epochs=args.epochs, seed=args.seed))
        print(f"[{i}/{len(args.methods)}] {method}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    print(
        f"noisy-tasks: {len(data.x_train)} train / {len(data.x_test)} test samples, "
        f"{args.epochs} epochs, seed {args.seed}"
    )
    print(report(results, args.noise, args.label_noise))
    print(
        "uw recovers σ² = held-out MSE (the noise variance); uw-revised learns "
        "σ² = (L + √(L² + 8L))/4, smaller for L > 1, larger for L < 1."
    )
    print(f"total {time.perf_counter() - start:.1f}s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``taskbalance`` command."""
    parser = argparse.ArgumentParser(
        prog="taskbalance", description=__doc__.splitlines()[0] if __doc__ else None
    )
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="compare methods on the noisy-tasks problem")
    bench.add_argument(
        "--methods",
        type=_names,
        default=DEFAULT_METHODS,
        help="comma-separated method names (default: %(default)s)",
    )
    bench.add_argument(
        "--noise",
        type=_floats,
        default=(1.0, 3.0, 10.0),
        help="noise std of each regression task (default: 1,3,10)",
    )
    bench.add_argument(
        "--label-noise",
        type=float,
        default=0.1,
        help="probability of a random label for the classifier (default: 0.1)",
    )
    bench.add_argument("--epochs", type=int, default=30)
    bench.add_argument("--seed", type=int, default=0)
    bench.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``taskbalance`` command.

    Example:
        >>> main(["bench", "--methods", "uw", "--noise", "1", "--epochs", "1"])  # doctest: +ELLIPSIS
        noisy-tasks: ...
        0
    """
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
