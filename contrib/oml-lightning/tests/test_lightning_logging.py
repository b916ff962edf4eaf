"""OML 4's pipeline-logger names (``from oml.lightning import logging``) on Lightning's own loggers."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from oml_lightning import logging  # noqa: E402


def test_tensorboard_pipeline_logger_logs_the_config_and_figures(tmp_path: Path) -> None:
    logger = logging.TensorBoardPipelineLogger(str(tmp_path))
    logger.log_pipeline_info({"extractor": {"name": "vit", "args": {"arch": "vits16"}}, "max_epochs": 3})
    figure = plt.figure()
    logger.log_figure(figure, "worst queries", 1)
    logger.finalize("success")
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events and sum(e.stat().st_size for e in events) > 1000  # the figure's PNG is in there
    assert "extractor|args|arch" in (Path(logger.log_dir) / "hparams.yaml").read_text()


def test_csv_pipeline_logger_saves_figures_next_to_its_metrics(tmp_path: Path) -> None:
    logger = logging.CSVPipelineLogger(str(tmp_path))
    logger.log_pipeline_info({"seed": 42})
    logger.log_figure(plt.figure(), "top 5 worst/cmc", 2)
    assert (Path(logger.log_dir) / "figures" / "top 5 worst_cmc_2.png").read_bytes()[:4] == b"\x89PNG"
