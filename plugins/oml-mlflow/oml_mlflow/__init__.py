"""OML logger plugin for MLflow.

Example (config)::

    loggers:
      - {type: csv}
      - {type: mlflow, tracking_uri: "http://127.0.0.1:5000", experiment: products, log_checkpoint: true}
"""

from oml_mlflow.logger import MLflowLogger, MLflowLoggerConfig

__all__ = ["MLflowLogger", "MLflowLoggerConfig"]
