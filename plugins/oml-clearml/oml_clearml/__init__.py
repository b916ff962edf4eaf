"""OML logger plugin for ClearML (online or offline session)."""

from oml_clearml.logger import ClearMLLogger, ClearMLLoggerConfig

__all__ = ["ClearMLLogger", "ClearMLLoggerConfig"]
