"""Aligned-MTL: the task gradients aligned by B = √σ V Λ^(-1/2) Vᵀ (M = G Gᵀ = V Λ Vᵀ), so
that their Gramian has every eigenvalue equal to σ (scale modes min, median, rmse); against
the authors' code (a near-singular case pins a deliberate difference) and TorchJD's AlignedMTL."""

from __future__ import annotations

import pytest
import torch

from taskbalance.gradient.aligned_mtl import aligned_matrix

from ..helpers import (
    ALL_JACOBIAN_CASES,
    PERMUTED_CASES,
    assert_agrees_with_torchjd,
    assert_ignores_task_order,
    authors_jacobian,
    close,
    gradient_balancer,
    jacobian_cases,
)
from ..properties import aggregate


@pytest.mark.parametrize(("dtype", "case"), ALL_JACOBIAN_CASES)
def test_aligned_mtl_gramian_has_equal_eigenvalues(dtype: torch.dtype, case: str) -> None:
    jac = jacobian_cases(dtype)[case].double()
    m = jac @ jac.T
    b = aligned_matrix(m, eps=torch.finfo(dtype).eps)
    lam = torch.linalg.eigvalsh(b @ m @ b)
    kept = lam[lam > lam.max() * 1e-6]
    torch.testing.assert_close(kept, kept.max().expand_as(kept), rtol=1e-6, atol=0)
    assert len(kept) == int(torch.linalg.matrix_rank(jacobian_cases(dtype)[case]))


@pytest.mark.parametrize("mode", ["median", "rmse"])
def test_aligned_mtl_scale_modes(mode: str) -> None:
    jac = jacobian_cases(torch.float64)["random-5"]
    m = jac @ jac.T
    lam = torch.linalg.eigvalsh(m)
    sigma = lam.median() if mode == "median" else lam.mean()
    lam_b = torch.linalg.eigvalsh(aligned_matrix(m, mode) @ m @ aligned_matrix(m, mode))
    torch.testing.assert_close(lam_b, sigma.expand_as(lam_b), rtol=1e-8, atol=0)
    assert float(aligned_matrix(torch.zeros(3, 3, dtype=torch.float64)).trace()) == 3.0
    _, w = aggregate("aligned-mtl", jac, scale_mode=mode, pref={str(i): 1.0 for i in range(5)})
    assert torch.isfinite(w).all()


@pytest.mark.parametrize("case", PERMUTED_CASES)
def test_aligned_mtl_ignores_task_order(case: str) -> None:
    assert_ignores_task_order("aligned-mtl", case)


# The authors' code at commit 3f577f1365101fdd16094313b4a3b0d3845ce10d (see tests/helpers.py):
# SamsungLabs/MTL, code/optim/aligned/solver.py, ProcrustesSolver.apply(grads.T.unsqueeze(0),
# scale_mode) as called by code/optim/aligned/balancer.py, AlignedMTLBalancer.step (default
# scale_mode='min'), which sums the aligned gradients over tasks: d = G^T B 1 and
# weights = B 1 (taskbalance with pref = 1 per task; its default pref = 1/K averages instead).
# torch.symeig (removed from torch 2.x) was replaced by torch.linalg.eigh. This one ran with the
# default dtype float32 (as in their training), which matters for the rank tolerance
# max(eig) * K * torch.finfo().eps: torch.finfo() is the default dtype's, eps = 1.19e-7.
# Per (case, scale_mode): (weights.sum(-1), grads[0].sum(-1)).
ALIGNED = {
    ("A", "min"): (
        [1.0897197834106, 0.8727365880207821],
        [0.39153051299397434, 0.5024240139196385, 0.6215245810609629],
    ),
    ("A", "median"): (
        [1.0897197834106, 0.8727365880207821],
        [0.39153051299397434, 0.5024240139196385, 0.6215245810609629],
    ),
    ("A", "rmse"): (
        [2.307884780899167, 1.8483425921873897],
        [0.8292107071492556, 1.064068720175284, 1.3163082320997477],
    ),
    ("B", "min"): (
        [0.7283858593271105, 1.1664934092071393, 0.8081049846465135],
        [0.6646800869469255, 0.4045209815898003, 0.45351335780202817, 0.74835040459463],
    ),
    ("B", "median"): (
        [0.9259543285818864, 1.4828948251623342, 1.027296588614852],
        [0.8449689072756865, 0.5142438573029113, 0.576524998871383, 0.9513340869502142],
    ),
    ("B", "rmse"): (
        [1.0756135713904393, 1.7225707031707065, 1.1933354793529838],
        [0.981538717423149, 0.5973595617467483, 0.6697070188997742, 1.105095384582448],
    ),
    ("C", "min"): (
        [0.5431894972504446, 0.6725091813070798, 1.0876738179556709],
        [
            0.1863826043358366,
            0.07979443949993703,
            0.049201538693002866,
            0.6210402723753821,
            0.00272055844786849,
        ],
    ),
    ("C", "median"): (
        [0.9829419341359498, 1.2169555537142231, 1.9682269479475012],
        [
            0.33727323249531516,
            0.14439399342656922,
            0.08903385623280372,
            1.123818721818034,
            0.004923053549845818,
        ],
    ),
    ("C", "rmse"): (
        [2.4793532874033413, 3.06962461152644, 4.964616712623173],
        [0.85073132877934, 0.3642165522200065, 0.22457723744896974, 2.834698109440499, 0.012417812872743683],
    ),
    ("E", "min"): (
        [0.46948755434550926, 0.5382265947658542, 1.0077141491113633],
        [1.4772017034568725, 1.5459407438772175, -0.03436952021017245, -0.35211566575913195],
    ),
    ("E", "median"): (
        [0.46948755434550926, 0.5382265947658542, 1.0077141491113633],
        [1.4772017034568725, 1.5459407438772175, -0.03436952021017245, -0.35211566575913195],
    ),
    ("E", "rmse"): (
        [0.5522810094916077, 0.6331420808521793, 1.1854230903437868],
        [1.7377040998353945, 1.8185651711959663, -0.04043053568028582, -0.41421075711870575],
    ),
    ("F", "min"): (
        [1.0435045406897168, 0.809377028607517, 0.9572242048344818, 0.38363223226173515],
        [0.3510830766425744, 0.41501668837587913, 0.3607740617069086, 0.5893247612920997, 0.636979035684825],
    ),
    ("F", "median"): (
        [2.0997705871473, 1.6286523079807915, 1.9261547527990688, 0.7719560827712566],
        [0.7064597126640213, 0.8351088102127081, 0.7259601983879479, 1.1858566511084363, 1.2817479863349739],
    ),
    ("F", "rmse"): (
        [2.063682033107776, 1.6006608182495206, 1.8930501173163368, 0.7586885482226002],
        [0.6943178578950873, 0.8207558758442028, 0.7134831906565179, 1.1654754475147635, 1.2597187076351788],
    ),
    ("G", "min"): (
        [0.46948997378265334, 0.5382259257078452, 1.0077150069595056],
        [1.477204980742159, 1.5459409326673508, -0.03436797596259594, -0.35210718005417224],
    ),
    ("G", "median"): (
        [0.46948997378265334, 0.5382259257078452, 1.0077150069595056],
        [1.477204980742159, 1.5459409326673508, -0.03436797596259594, -0.35210718005417224],
    ),
    ("G", "rmse"): (
        [0.5522834207992708, 0.6331407953567801, 1.1854231662293273],
        [1.7377065870285981, 1.8185639615861073, -0.04042868727875451, -0.41420044888610996],
    ),
}

ALIGNED_MODES = ("min", "median", "rmse")


@pytest.mark.parametrize(("case", "mode"), [key for key in sorted(ALIGNED) if key[0] != "G"])
def test_aligned_mtl_matches_the_authors_code(case: str, mode: str) -> None:
    w_auth, d_auth = ALIGNED[(case, mode)]
    g = authors_jacobian(case)
    b = gradient_balancer("aligned-mtl", len(g), scale_mode=mode, pref=[1.0] * len(g))
    d, w = b.aggregate(g)
    close(w, w_auth, 1e-10)  # the same eigendecomposition: agreement to rounding
    close(d, d_auth, 1e-10)


@pytest.mark.parametrize("mode", ALIGNED_MODES)
def test_aligned_mtl_near_singular_float32_matches_the_authors_code(mode: str) -> None:
    # Jacobian G (smallest eigenvalue 2.7e-11 of 3.1): their float32 eps drops it; taskbalance
    # takes eps from the Jacobian's dtype, so a float32 Jacobian is the comparable input
    # (float32 rounding of G: agreement to ~1e-7)
    w_auth, d_auth = ALIGNED[("G", mode)]
    b = gradient_balancer("aligned-mtl", 3, scale_mode=mode, pref=[1.0] * 3)
    d, w = b.aggregate(authors_jacobian("G").float())
    close(w, w_auth, 1e-6)
    close(d, d_auth, 1e-6)


@pytest.mark.xfail(
    strict=True,
    reason="deliberate (docs/methods/aligned-mtl.md): the rank cut-off uses the Jacobian's eps, as "
    "TorchJD does; the authors' float32 eps drops the 2.7e-11 eigenvalue of this float64 Jacobian: "
    "weights (0.33, 0.33, -0.33) instead of (0.47, 0.54, 1.01) with 'min', ~8.5e4 with 'median'/'rmse'",
)
@pytest.mark.parametrize("mode", ALIGNED_MODES)
def test_aligned_mtl_near_singular_float64_matches_the_authors_code(mode: str) -> None:
    w_auth, d_auth = ALIGNED[("G", mode)]
    b = gradient_balancer("aligned-mtl", 3, scale_mode=mode, pref=[1.0] * 3)
    d, w = b.aggregate(authors_jacobian("G"))
    close(w, w_auth, 1e-6)
    close(d, d_auth, 1e-6)


def test_aligned_mtl_direction_agrees_with_torchjd() -> None:
    assert_agrees_with_torchjd("aligned-mtl", {}, lambda agg, _k: agg.AlignedMTL())
