"""torch.compile(fullgraph=True) of the loss-based balancers (check=False: no host sync)."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb
from taskbalance.weighting.uncertainty import LearnedScales

from .helpers import make

COMPILABLE = [m for m in tb.methods("loss") if m != "rlw"]

# dynamo inspects the inputs' .grad while guarding, which warns for non-leaf losses
pytestmark = pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")


def losses(step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    x = torch.tensor([1.0 + step, 2.0, 0.5 * (step + 1)], requires_grad=True)
    return x, {"a": x[0] * 1, "b": x[1] * 1, "c": x[2] * 1}


@pytest.mark.parametrize("name", COMPILABLE)
def test_loss_based_balancers_compile_with_fullgraph(name: str) -> None:
    torch._dynamo.reset()
    eager, compiled_module = make(name, check=False), make(name, check=False)
    if isinstance(compiled_module, LearnedScales):  # init="auto" reads the first losses once:
        for b in (eager, compiled_module):  # one eager step, as documented, before compiling
            b(losses(-1)[1]).backward()
            b.zero_grad()
    compiled = torch.compile(compiled_module, fullgraph=True, backend="aot_eager")
    for step in range(3):
        xe, le = losses(step)
        xc, lc = losses(step)
        want = eager(le)
        got = compiled(lc)
        torch.testing.assert_close(got, want)
        want.backward()
        got.backward()
        torch.testing.assert_close(xc.grad, xe.grad)
        for p, q in zip(eager.parameters(), compiled_module.parameters()):
            torch.testing.assert_close(q.grad, p.grad)
        eager.epoch_end()
        compiled_module.epoch_end()
        if name == "famo":
            eager.after_step({k: v.detach() * 0.9 for k, v in le.items()})
            compiled_module.after_step({k: v.detach() * 0.9 for k, v in lc.items()})
