"""Data-parallel training: two processes under torchrun (gloo, CPU) against one process.

One torchrun launch trains every configuration of tests/ddp_job.py under
DistributedDataParallel with the global batch split over 2 ranks; the tests compare
what each rank ended with to the other rank, to a single process on the global batch,
and to a run resumed from a checkpoint saved under DDP.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import taskbalance as tb
from taskbalance.distributed import active_group, ignore_in_ddp, world_size
from taskbalance.gradient.core import _refuse_sharded

from . import ddp_job
from .helpers import child_env

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("ddp")
    env = child_env(PYTHONPATH=str(HERE.parent / "src"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run(
        [*cmd, str(HERE / "ddp_job.py"), str(out)], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def single() -> dict[str, dict[str, Any]]:
    return {f"{m}/{mode}": ddp_job.train(m, mode) for m, mode in ddp_job.CONFIGS}


CONFIG_IDS = [f"{m}/{mode}" for m, mode in ddp_job.CONFIGS]


@pytest.mark.parametrize("config", CONFIG_IDS)
def test_ranks_agree_with_each_other_and_with_one_process(
    config: str, ranks: list[dict[str, Any]], single: dict[str, dict[str, Any]]
) -> None:
    r0, r1, ref = ranks[0][config], ranks[1][config], single[config]
    assert torch.equal(r0["params"], r1["params"]), "the replicas drifted apart"
    assert torch.equal(r0["weights"], r1["weights"]), "the ranks used different weights"
    for key in r0["balancer"]:
        assert torch.equal(r0["balancer"][key], r1["balancer"][key]), f"balancer state {key} differs"
    torch.testing.assert_close(r0["params"], ref["params"], atol=1e-5, rtol=0)
    torch.testing.assert_close(r0["weights"], ref["weights"], atol=1e-5, rtol=1e-5)
    for key, value in ref["balancer"].items():
        if value.is_floating_point():
            torch.testing.assert_close(r0["balancer"][key], value, atol=1e-5, rtol=1e-5)
        else:
            assert torch.equal(r0["balancer"][key], value), key


@pytest.mark.parametrize("config", CONFIG_IDS)
def test_resuming_a_checkpoint_saved_under_ddp_continues_identically(
    config: str, ranks: list[dict[str, Any]]
) -> None:
    for rank in ranks:
        assert torch.equal(rank[config]["resumed"], rank[config]["params"])


def test_the_comparison_can_fail(ranks: list[dict[str, Any]], single: dict[str, dict[str, Any]]) -> None:
    """Control: with sync_dist=False each rank balances its own shard; DDP keeps the
    replicas equal, but the run is not the single-process run on the global batch."""
    r0, r1 = ranks[0]["unsynced"], ranks[1]["unsynced"]
    assert torch.equal(r0["params"], r1["params"])
    assert not torch.equal(r0["weights"], r1["weights"])
    assert (r0["params"] - single["mgda/params"]["params"]).abs().max() > 1e-3


@pytest.mark.parametrize(("method", "mode"), ddp_job.FSDP_CONFIGS)
def test_fsdp2_sharded_encoder(method: str, mode: str, ranks: list[dict[str, Any]]) -> None:
    """Loss-based methods and feature mode give the single-process gradient under FSDP2;
    parameter mode cannot (no rank holds whole per-task gradients) and says so."""
    r0, r1 = (rank[f"fsdp/{method}/{mode}"] for rank in ranks)
    if tb.get_method(method).kind == "gradient" and mode == "params":
        assert r0["error"] == r1["error"] and "sharded (FSDP)" in r0["error"] and "features=" in r0["error"]
        return
    ref = ddp_job.fsdp_step(method, mode, sharded=False)
    for rank in (r0, r1):
        torch.testing.assert_close(rank["grad"], ref["grad"], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(rank["weights"], ref["weights"], atol=1e-6, rtol=1e-5)


def test_one_rank_may_evaluate_alone(ranks: list[dict[str, Any]]) -> None:
    assert ranks[0]["eval_alone"] == 6.0 and "eval_alone" not in ranks[1]


def test_a_task_present_on_one_rank_only_is_refused_on_every_rank(ranks: list[dict[str, Any]]) -> None:
    messages = [rank["partial"] for rank in ranks]
    assert messages[0] is not None and messages[0] == messages[1]
    assert "task 'c' has a loss on 1 of 2 ranks" in messages[0]


def test_single_process_needs_no_group() -> None:
    assert active_group() is None and world_size() == 1
    b = tb.create("uw", tasks=2)
    w = torch.ones(2, requires_grad=True)
    values = torch.stack([w[0], w[1]])
    assert b._global_values(values, slice(None)) is values


def test_ignore_in_ddp_needs_a_submodule() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="not a submodule"):
        ignore_in_ddp(model, tb.create("uw", tasks=2))
    model.balancer = tb.create("gradnorm", tasks=2)
    ignore_in_ddp(model, model.balancer)
    ignore_in_ddp(model, model.balancer)  # idempotent
    assert sorted(model._ddp_params_and_buffers_to_ignore) == [
        "balancer.initial_losses",
        "balancer.seen",
        "balancer.weights_param",
    ]


def test_sharded_parameters_are_refused_with_a_pointer_to_features() -> None:
    p = nn.Parameter(torch.ones(3))
    _refuse_sharded([p])  # whole parameters pass
    p._is_flat_param = True  # type: ignore[attr-defined]  # what FSDP's flat parameters carry
    with pytest.raises(ValueError, match=r"sharded \(FSDP\).*features="):
        _refuse_sharded([p])
