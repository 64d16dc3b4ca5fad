"""Type stub of the compiled QP kernel (_qpkernel.c)."""

from typing_extensions import Buffer

def solve(a: Buffer, b: Buffer, x: Buffer, batch: int, k: int, iters: int, shared: bool, /) -> int:
    """Solve ``min ½xᵀAx + bᵀx`` s.t. ``x ≥ 0`` for each row of ``b`` into ``x``; returns
    the number of problems it could not solve (set to NaN)."""
