"""OML logger plugin for ClearML (online or offline session)."""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) imports neither torch nor the tracker library
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ClearMLLogger": "oml_clearml.logger",
        "ClearMLLoggerConfig": "oml_clearml.logger",
    },
)

__all__ = ["ClearMLLogger", "ClearMLLoggerConfig"]
