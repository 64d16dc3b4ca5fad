"""Per-method tests: each method's defining equations on adversarial Jacobians and its
agreement with TorchJD or the authors' code."""
