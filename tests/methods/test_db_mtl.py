"""DB-MTL: log-loss gradients in moving averages, each scaled to the largest average norm;
refuses features= (the averages live in parameter space); against LibMTL's DB_MTL."""

from __future__ import annotations

import pytest
import torch

import taskbalance as tb

from ..helpers import (
    F64,
    close,
    encoder_and_heads,
    gradient_balancer,
    jacobian_cases,
    make,
    task_losses,
)


def test_db_mtl_balances_moving_average_norms() -> None:
    jac = jacobian_cases(torch.float64)["scales-1e6"]
    b = tb.create("db-mtl", tasks=4)
    for _ in range(3):
        d, alpha = b.aggregate(jac)  # type: ignore[attr-defined]
    avg = b.averages
    assert avg is not None
    scaled = alpha[:, None] * avg
    norms = scaled.norm(dim=1)
    # the definition's +1e-8 in αᵢ = max‖ĝ‖/(‖ĝᵢ‖ + 1e-8) is visible on the 1e-3-scaled task
    torch.testing.assert_close(norms, norms.max().expand_as(norms), rtol=1e-4, atol=0)
    torch.testing.assert_close(d, scaled.sum(0))


def test_db_mtl_refuses_features_and_says_why() -> None:
    enc, heads, x = encoder_and_heads()
    z = enc(x)
    with pytest.raises(ValueError, match=r"DBMTL.*moving averages.*shared_params="):
        make("db-mtl").backward(task_losses(heads, z, torch.randn(8, 3)), features=z)


# The authors' code at commit 4336804847eaa5e0b924b743d76beec7ac3fdc97 (see tests/helpers.py):
# median-research-group/LibMTL, LibMTL/weighting/DB_MTL.py, DB_MTL.backward (config defaults
# DB_beta=0.9, DB_beta_sigma=0), run step by step on the losses L_i = exp(J_i . theta) - 1e-8, so
# that the gradients of their objectives log(L_i + 1e-8) are exactly the rows of the Jacobians
# below (the Jacobians taskbalance's aggregate takes). Per (sequence, beta_sigma), per step:
# (alpha = max_j ||g_j|| / (||g_i|| + 1e-8) of the moving averages, the shared gradient written).
DB_MTL_JACOBIANS = {
    "K2": [
        [[1.0, -0.5, 0.25], [-0.8, 1.2, 0.4]],
        [[0.5, -1.0, 0.3], [0.2, 0.9, -0.6]],
        [[1.5, 0.0, -0.2], [-0.1, 0.3, 0.8]],
    ],
    "K3": [
        [[0.9, 0.1, -0.4, 0.3], [-0.2, 0.7, 0.5, -0.1], [0.3, -0.6, 0.2, 0.8]],
        [[0.1, 0.4, -0.2, 0.9], [0.5, -0.3, 0.6, 0.2], [-0.7, 0.1, 0.3, 0.4]],
        [[0.9, 0.1, -0.4, 0.3], [-0.2, 0.7, 0.5, -0.1], [0.3, -0.6, 0.2, 0.8]],
    ],
}
DB_MTL = {
    ("K2", 0.0): [
        (
            [1.3063944154529077, 0.999999933184694],
            [0.05063944689051526, 0.054680271209517795, 0.07265985771371043],
        ),
        (
            [0.9999999519880939, 1.0105046346137418],
            [0.08745375227841853, 0.055079924615247106, 0.028247886248645066],
        ),
        (
            [0.9999999673747132, 1.3709763100014645],
            [0.19812853658733748, 0.15493727199990462, 0.10731501561504642],
        ),
    ],
    ("K2", 0.5): [
        (
            [1.3063944154529077, 0.999999933184694],
            [0.05063944689051526, 0.054680271209517795, 0.07265985771371043],
        ),
        (
            [0.9999999792486562, 1.0761731787812816],
            [0.2689119126191307, 0.03893168160520111, -0.08239449119651193],
        ),
        (
            [0.9999999885478886, 1.9178331591934914],
            [0.7777160502431646, 0.47313383010578847, 0.5138697369538696],
        ),
    ],
    ("K3", 0.0): [
        (
            [1.0276548847575078, 1.1959847093399263, 0.9999999059279221],
            [0.09856924261921479, 0.03399548414569459, 0.038693038195254444, 0.09886979192355967],
        ),
        (
            [0.9999999397054081, 1.440343876863988, 1.2150109443977342],
            [0.0848455279637372, 0.0430708634285763, 0.15355663577830697, 0.2689250013635826],
        ),
        (
            [0.9999999588148288, 1.3813234132233194, 1.123827281152398],
            [0.17427834161060843, 0.07988474486746831, 0.18022712110274053, 0.3383498345186773],
        ),
    ],
    ("K3", 0.5): [
        (
            [1.0276548847575078, 1.1959847093399263, 0.9999999059279221],
            [0.09856924261921479, 0.03399548414569459, 0.038693038195254444, 0.09886979192355967],
        ),
        (
            [0.9999999751086226, 1.2726926268161152, 1.2178409702516422],
            [0.022097975019744642, 0.06745369778560814, 0.36831791130493874, 0.6699142440312936],
        ),
        (
            [0.9999999844135129, 1.3411017673007095, 1.090689117673571],
            [0.4937297829562081, 0.21751611899577433, 0.42698025111972415, 0.8363346173635949],
        ),
    ],
}


@pytest.mark.parametrize(("seq", "beta_sigma"), sorted(DB_MTL))
def test_db_mtl_matches_the_authors_code(seq: str, beta_sigma: float) -> None:
    steps = DB_MTL_JACOBIANS[seq]
    b = gradient_balancer("db-mtl", len(steps[0]), beta=0.9, beta_sigma=beta_sigma)
    for step, (alpha, d_auth) in zip(steps, DB_MTL[(seq, beta_sigma)]):
        # aggregate() takes the raw losses' Jacobian and divides each row by L + ε: with
        # L + ε = 1 exactly, the rows are the log-loss gradients the authors' code was given
        k = len(step)
        d, w = b.aggregate(torch.tensor(step, dtype=F64), torch.full((k,), 1.0 - 1e-8, dtype=F64))
        close(w, alpha, 1e-12)  # the same arithmetic: agreement to rounding
        close(d, d_auth, 1e-12)
