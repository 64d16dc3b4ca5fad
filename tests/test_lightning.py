"""Lightning: BalancedModule under Trainer(accelerator="cpu", devices=2, strategy="ddp")."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import taskbalance as tb
from taskbalance.lightning import BalancedModule

from . import lightning_job
from .helpers import child_env

HERE = Path(__file__).parent
CONFIGS = [f"{m}-{mode}" for m, mode in lightning_job.CONFIGS]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lightning")
    env = child_env(PYTHONPATH=str(HERE.parent / "src"))
    for devices in ("2", "1"):
        proc = subprocess.run(
            [sys.executable, str(HERE / "lightning_job.py"), str(out), devices],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
    return out


@pytest.mark.parametrize("config", CONFIGS)
def test_ddp_trainer_equals_one_process_on_the_global_batch(config: str, runs: Path) -> None:
    r0, r1, single = (torch.load(runs / f"{config}-{who}.pt") for who in ("rank0", "rank1", "single"))
    assert torch.equal(r0["params"], r1["params"])
    assert torch.equal(r0["weights"], r1["weights"])
    assert (r0["params"] - r0["start"]).abs().max() > 1e-2  # it trained
    torch.testing.assert_close(r0["params"], single["params"], atol=1e-5, rtol=0)
    torch.testing.assert_close(r0["weights"], single["weights"], atol=1e-5, rtol=1e-5)


def test_optimisation_mode_follows_the_method() -> None:
    assert lightning_job.build("uw", "params").automatic_optimization
    assert not lightning_job.build("nash-mtl", "params").automatic_optimization


def test_default_optimiser_and_checkpointed_state() -> None:
    module = lightning_job.build("uw", "params")
    opt = module.configure_optimizers()
    groups = opt.param_groups
    assert len(groups) == 2 and groups[1]["weight_decay"] == 0.0 and groups[1]["lr"] == 0.01
    own = {id(p) for p in module.balancer.parameters()}
    assert not any(id(p) in own for p in groups[0]["params"])
    assert "balancer._extra_state" in module.state_dict()


def test_missing_methods_say_what_to_implement() -> None:
    class Bare(BalancedModule):
        pass

    bare = Bare(tb.create("mgda", tasks=2))
    with pytest.raises(NotImplementedError, match="task_losses"):
        bare.task_losses(None)
    with pytest.raises(NotImplementedError, match=r"shared_parameters.*'mgda'"):
        list(bare.shared_parameters())


def test_fit_logs_the_balancer_stats() -> None:
    import lightning.pytorch as pl

    logged: dict[str, Any] = {}

    class Logged(pl.Callback):
        def on_train_batch_end(self, trainer: Any, *_args: Any) -> None:
            logged.update(trainer.callback_metrics)

    module = lightning_job.build("famo", "params")
    trainer = lightning_job.trainer(max_steps=3, callbacks=[Logged()])
    with warnings.catch_warnings():  # Lightning's advice on dataloader workers and the like
        warnings.simplefilter("ignore")
        trainer.fit(module)
    assert {"balancer/weight/a", "balancer/weight/b", "train/loss"} <= set(logged)
    assert float(logged["balancer/weight/a"]) == pytest.approx(float(module.balancer.weights["a"]))


@pytest.mark.parametrize("method", ["uw", "nash-mtl"])
def test_bf16_mixed_precision_trainer(method: str) -> None:
    module = lightning_job.build(method, "params")
    trainer = lightning_job.trainer(precision="bf16-mixed", max_steps=4)
    start = [p.detach().clone() for p in module.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module)
    weights = torch.stack(list(module.balancer.weights.values()))
    assert torch.isfinite(weights).all() and weights.dtype == torch.float32
    moved = [float((p - q).abs().max()) for p, q in zip(module.parameters(), start)]
    assert all(torch.isfinite(p).all() for p in module.parameters()) and max(moved) > 0
