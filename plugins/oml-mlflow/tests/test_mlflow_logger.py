"""The mlflow logger against a real local store (sqlite) and a real tracking server started on 127.0.0.1."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from oml_mlflow import MLflowLogger
from oml_mlflow.logger import safe_key

from oml_core import Host
from oml_core.engine.tracking import TrackerError
from oml_core.errors import OMLError
from oml_core.testing.trackers import TcpRelay, free_port, train_tiny_run


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def _check_run(client: MlflowClient, run_id: str, run_dir: Path) -> None:
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["optimizer/lr"] == "0.001" and params["extractor/type"] == "resnet" and params["data/im_size"] == "32"
    assert run.data.tags["oml.run_dir"] == str(run_dir.resolve())
    loss_steps = [step for step, _ in _history(client, run_id, "train/loss")]
    assert loss_steps == sorted(loss_steps) and len(loss_steps) >= 2
    validations = _history(client, run_id, "val/OVERALL/cmc/1")
    assert [step for step, _ in validations][0] == 0 and len(validations) == 2  # before training and after epoch 1
    assert 0.0 <= validations[-1][1] <= 1.0
    images = {f.path for f in client.list_artifacts(run_id, "images")}
    assert any("worst_queries" in path for path in images), images
    assert [f.path for f in client.list_artifacts(run_id, "checkpoints")] == ["checkpoints/best.pt"]


def test_local_store_run_params_metrics_images_checkpoint_and_resume(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    loggers = [{"type": "csv"}, {"type": "mlflow", "tracking_uri": uri, "experiment": "tiny", "log_checkpoint": True}]
    first = train_tiny_run(tmp_path, loggers=loggers)
    run_id = (first.run_dir / "trackers" / "mlflow.json").read_text()
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.run_id in run_id
    _check_run(client, run.info.run_id, first.run_dir)
    steps_first = len(_history(client, run.info.run_id, "train/loss"))

    resumed = train_tiny_run(tmp_path, loggers=loggers, epochs=2, resume=first.run_dir)
    assert resumed.run_dir == first.run_dir
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert [r.info.run_id for r in runs] == [run.info.run_id]  # the same tracked run, continued
    assert len(_history(client, run.info.run_id, "train/loss")) == 2 * steps_first
    assert len(_history(client, run.info.run_id, "val/OVERALL/cmc/1")) == 3
    assert client.get_run(run.info.run_id).data.tags["oml.params_changed_on_resume"] == "epochs"
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


class _FailInSecondEpoch:
    def oml_train_batch_end(self, engine) -> None:  # noqa: ANN001
        if engine.state.epoch == 1:
            raise RuntimeError("a plugin broke")


def test_failed_and_stopped_runs_are_marked_in_mlflow(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    loggers = [{"type": "mlflow", "tracking_uri": uri, "experiment": "ends"}]
    with pytest.raises(OMLError, match="a plugin broke"):
        train_tiny_run(tmp_path / "failed", loggers=loggers, epochs=2, host=Host(plugins=[_FailInSecondEpoch()]))
    stopped = train_tiny_run(tmp_path / "stopped", loggers=loggers, epochs=2, host=Host(plugins=[_StopAfterFirstEpoch()]))
    assert stopped.status == "stopped"
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("ends").experiment_id])
    status = {Path(run.data.tags["oml.run_dir"]).parent.parent.name: run.info.status for run in runs}
    assert status == {"failed": "FAILED", "stopped": "FINISHED"}


class _StopAfterFirstEpoch:
    def oml_epoch_end(self, engine) -> None:  # noqa: ANN001
        engine.state.request_stop("enough")


@pytest.mark.slow
def test_tracking_server_run(tmp_path: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    loggers = [{"type": "mlflow", "tracking_uri": mlflow_server, "experiment": "server", "log_checkpoint": True}]
    result = train_tiny_run(tmp_path, loggers=loggers)
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # set for the run only
    client = MlflowClient(mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("server").experiment_id])
    _check_run(client, run.info.run_id, result.run_dir)


def test_unreachable_server_at_start_is_one_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TrackerError) as info:
        MLflowLogger(tracking_uri=url, run_dir=tmp_path / "run", start_timeout=3)
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert url in message and "mlflow server" in message and "Traceback" not in message
    assert not (tmp_path / "run" / "trackers").exists()


def test_unreachable_server_stops_oml_train_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from oml_core.cli import main
    from oml_core.testing.trackers import tiny_train_config

    url = f"http://127.0.0.1:{free_port()}"
    config = tiny_train_config(tmp_path, loggers=[{"type": "mlflow", "tracking_uri": url, "start_timeout": 2}])
    code = main(["train", str(config)])
    err = capsys.readouterr().err
    assert code != 0 and url in err and "Traceback" not in err
    assert not list((tmp_path / "runs").glob("*/checkpoints/*.pt"))


class _CutAfterFirstEpoch:
    """A plugin that cuts the relay to the tracking server when the first epoch ends."""

    def __init__(self, relay: TcpRelay) -> None:
        self.relay = relay

    def oml_epoch_end(self, engine) -> None:  # noqa: ANN001
        if engine.state.epoch == 1:
            self.relay.cut()


@pytest.mark.slow
def test_server_lost_mid_run_never_stops_training(tmp_path: Path, mlflow_server: str, capfd: pytest.CaptureFixture[str]) -> None:
    relay = TcpRelay(int(mlflow_server.rsplit(":", 1)[1]))
    loggers = [{"type": "csv"}, {"type": "mlflow", "tracking_uri": relay.url, "experiment": "lost", "close_timeout": 30}]
    host = Host(plugins=[_CutAfterFirstEpoch(relay)])
    result = train_tiny_run(tmp_path, loggers=loggers, epochs=3, host=host)
    assert result.status == "completed" and result.epochs == 3
    err = capfd.readouterr().err
    assert err.count("the mlflow logger lost its tracker") == 1, err
    # the run directory kept everything the tracker missed
    rows = (result.run_dir / "metrics.csv").read_text().splitlines()
    assert sum(",val/OVERALL/cmc/1," in row for row in rows) == 4
    client = MlflowClient(mlflow_server)
    (run,) = client.search_runs([client.get_experiment_by_name("lost").experiment_id])
    assert len(_history(client, run.info.run_id, "val/OVERALL/cmc/1")) < 4


def test_safe_key_keeps_valid_names() -> None:
    assert safe_key("train/lr/0") == "train/lr/0"
    assert safe_key("val/cat a/fnmr@fmr/0.1") == "val/cat a/fnmr_fmr/0.1"
