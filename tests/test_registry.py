from __future__ import annotations

import pytest

import taskbalance as tb
from taskbalance.registry import aliases


def test_every_issue_method_is_registered() -> None:
    expected = {
        "equal",
        "static",
        "uw",
        "uw-simplified",
        "uw-revised",
        "dwa",
        "rlw",
        "uw-so",
        "geometric",
        "stch",
        "famo",
        "imtl-l",
        "cosmos",
        "pbi",
    }
    assert expected <= set(tb.methods())
    gradient = {
        "gradnorm",
        "mgda",
        "pcgrad",
        "graddrop",
        "gradvac",
        "cagrad",
        "imtl-g",
        "imtl",
        "nash-mtl",
        "aligned-mtl",
        "upgrad",
        "db-mtl",
        "fairgrad",
        "excess-mtl",
        "moco",
        "modo",
        "sdmgrad",
        "rgw",
        # TorchJD's aggregators (issue: the feature table covers TorchJD's rows)
        "dualproj",
        "pcd",
        "cr-mogm",
        "config",
        "krum",
        "trimmed-mean",
    }
    assert set(tb.methods("gradient")) == gradient
    assert set(tb.methods("loss")) | gradient == set(tb.methods())


def test_aliases_and_case_resolve_to_the_same_class() -> None:
    assert tb.get_method("Kendall") is tb.UncertaintyWeighting
    assert tb.get_method("UW_SIMPLIFIED") is tb.UncertaintySimplified
    for alias, name in aliases().items():
        assert tb.get_method(alias) is tb.get_method(name)


def test_unknown_method_suggests_close_names() -> None:
    with pytest.raises(ValueError, match=r"unknown method 'uw-revsed'.*'uw-revised'"):
        tb.create("uw-revsed", tasks=2)
    with pytest.raises(ValueError, match=r"'mgda-ub' \(an alias of 'mgda'\)"):
        tb.create("mgdaa", tasks=2)
    with pytest.raises(TypeError, match=r"uw has no option 'lr'\. Its options: "):
        tb.create("uw", tasks=2, lr=0.1)


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        tb.register("uw")(type("Dup", (tb.Equal,), {}))


def test_create_passes_hyper_parameters() -> None:
    b = tb.create("dwa", tasks=2, temperature=5.0)
    assert isinstance(b, tb.DWA) and b.temperature == 5.0
    with pytest.raises(TypeError):
        tb.create("uw", tasks=2, not_a_parameter=1)
