"""One test module per method: its own math, cross-checks and regressions."""
