"""OML logger plugin for MLflow.

Example (config)::

    loggers:
      - {type: csv}
      - {type: mlflow, tracking_uri: "http://127.0.0.1:5000", experiment: products, log_checkpoint: true}
"""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) imports neither torch nor the tracker library
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "MLflowLogger": "oml_mlflow.logger",
        "MLflowLoggerConfig": "oml_mlflow.logger",
    },
)

__all__ = ["MLflowLogger", "MLflowLoggerConfig"]
