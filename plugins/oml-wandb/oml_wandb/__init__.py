"""OML logger plugin for Weights & Biases.

Example (config)::

    loggers:
      - {type: wandb, project: products, mode: offline}
"""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) imports neither torch nor the tracker library
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "WandbLogger": "oml_wandb.logger",
        "WandbLoggerConfig": "oml_wandb.logger",
    },
)

__all__ = ["WandbLogger", "WandbLoggerConfig"]
