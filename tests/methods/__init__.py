"""One module per registered method, ``test_<name>.py`` (dashes as underscores): the tests of
that method's own math and behaviour, and its cross-checks against the authors' code and
TorchJD. The contract every method shares is tested once for all of them in ``tests/``."""
