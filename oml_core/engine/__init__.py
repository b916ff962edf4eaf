"""The hook-driven training and validation engine (optional: every component also works in a plain loop)."""

from oml_core.engine.builtins import NonFiniteLossError, flatten_metrics, seed_everything
from oml_core.engine.checkpoint import CheckpointError, atomic_save, load_checkpoint_file
from oml_core.engine.core import Engine, LifecycleHooks, PerItemSeededDataset
from oml_core.engine.state import EngineOptions, FitStatus, State, StepOutput

__all__ = [
    "CheckpointError",
    "Engine",
    "EngineOptions",
    "FitStatus",
    "LifecycleHooks",
    "NonFiniteLossError",
    "PerItemSeededDataset",
    "State",
    "StepOutput",
    "atomic_save",
    "flatten_metrics",
    "load_checkpoint_file",
    "seed_everything",
]
