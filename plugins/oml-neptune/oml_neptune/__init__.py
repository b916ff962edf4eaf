"""OML logger plugin for Neptune (async, or offline to sync later)."""

from oml_neptune.logger import NeptuneLogger, NeptuneLoggerConfig

__all__ = ["NeptuneLogger", "NeptuneLoggerConfig"]
