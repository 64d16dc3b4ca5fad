"""The solvers' compiled fast path, src/taskbalance/solvers/_qpkernel.c (plain C against
Python's own API, no NumPy headers). Everything else is in pyproject.toml.

The extension is optional: without a C compiler the install still succeeds and the
NumPy reference implementation of the same algorithm runs instead
(``taskbalance.solvers.backend()`` says which).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "taskbalance.solvers._qpkernel",
            sources=["src/taskbalance/solvers/_qpkernel.c"],
            optional=True,
        )
    ]
)
