"""OML logger plugin for Neptune (async, or offline to sync later)."""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) imports neither torch nor the tracker library
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "NeptuneLogger": "oml_neptune.logger",
        "NeptuneLoggerConfig": "oml_neptune.logger",
    },
)

__all__ = ["NeptuneLogger", "NeptuneLoggerConfig"]
