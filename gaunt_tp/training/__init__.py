"""Training: configuration, loss and metrics, checkpoints, the loop and the command line."""

from gaunt_tp.training.config import TrainConfig, config_from_args
from gaunt_tp.training.loop import evaluate, run_training

__all__ = ["TrainConfig", "config_from_args", "evaluate", "run_training"]
