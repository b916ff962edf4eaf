"""OML logger plugin for Weights & Biases.

Example (config)::

    loggers:
      - {type: wandb, project: products, mode: offline}
"""

from oml_wandb.logger import WandbLogger, WandbLoggerConfig

__all__ = ["WandbLogger", "WandbLoggerConfig"]
