"""The training engine: one loop for every task, profile-driven, resumable, torchrun-ready.

    from lifestudy.engine import TrainConfig, train
    record = train(TrainConfig(data="digits", model="deit_test_patch4_32_life",
                               profile="smoke", seed=0, out="runs/smoke/demo"))
    record["metrics"]["top1"]

A run folder holds ``config.json``, ``metrics.csv`` (one row per epoch),
``checkpoint.pt`` (atomic, carries its config) and ``record.json`` (atomic).
:func:`load_run` rebuilds a trained model from its folder; :func:`evaluate_run`
evaluates it again, on its own dataset or another.
"""

from lifestudy.engine.config import TrainConfig, config_from_dict, resolve
from lifestudy.engine.evaluate import evaluate_run
from lifestudy.engine.loop import METRICS_CSV, RECORD, TrainingDivergedError, train
from lifestudy.engine.trained import load_run
from lifestudy.weights import load_checkpoint

__all__ = [
    "TrainConfig",
    "resolve",
    "config_from_dict",
    "train",
    "evaluate_run",
    "load_run",
    "load_checkpoint",
    "TrainingDivergedError",
    "RECORD",
    "METRICS_CSV",
]
