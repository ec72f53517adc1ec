"""Training: configuration, loss and metrics, checkpoints, the loop, batched predictions and the command line."""

from gaunt_tp.training.config import TrainConfig, config_from_args
from gaunt_tp.training.evaluation import evaluate
from gaunt_tp.training.loop import run_training
from gaunt_tp.training.predict import Prediction, predict

__all__ = ["Prediction", "TrainConfig", "config_from_args", "evaluate", "predict", "run_training"]
