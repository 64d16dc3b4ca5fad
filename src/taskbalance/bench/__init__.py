"""Built-in benchmark problems and the runner behind ``taskbalance bench``."""

from .noisy import NoisyResult, NoisyTasks, make_noisy_tasks, train_noisy

__all__ = ["NoisyResult", "NoisyTasks", "make_noisy_tasks", "train_noisy"]
