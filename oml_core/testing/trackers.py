"""Helpers for testing logger plugins: a tiny real training run (``oml train``'s pipeline on the mock dataset) with the
loggers under test, and a TCP relay that can be cut to simulate a tracker lost in the middle of a run.

Example (in a plugin's test)::

    result = train_tiny_run(tmp_path, loggers=[{"type": "csv"}, {"type": "mlflow", "tracking_uri": uri}])
    resumed = train_tiny_run(tmp_path, loggers=[...], epochs=2, resume=result.run_dir)
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

from oml_core.config import dump_yaml


def tiny_train_config(
    tmp_path: Path,
    *,
    loggers: list[dict[str, Any]],
    epochs: int = 1,
    dataframe: str = "df.csv",
    n_labels: int = 9,
    **changes: Any,
) -> Path:
    """Write a config that trains a small ResNet on 32-pixel mock images (``n_labels`` labels x 4, the last third for
    validation) and validates before training and after every epoch (``dataframe``: one of the mock's, e.g.
    ``df_with_category.csv``: with 9 labels its validation labels form one category, with 12 two); returns its
    path (``tmp_path/train.yaml``, runs under ``tmp_path/runs``)."""
    from oml_core.data import download_mock_dataset

    root = tmp_path / "mock"
    download_mock_dataset(root, n_labels=n_labels, n_instances=4, im_size=32)
    config: dict[str, Any] = {
        "pipeline": "train",
        "name": "tiny",
        "epochs": epochs,
        "device": "cpu",
        "run_dir": str(tmp_path / "runs"),
        "data": {"dataframe": str(root / dataframe), "dataset_root": str(root), "im_size": 32},
        "extractor": {"type": "resnet", "arch": "resnet18", "weights": None},
        "criterion": {"type": "triplet_with_miner", "margin": 0.2, "miner": {"type": "hard_triplets"}},
        "sampler": {"type": "balance", "n_labels": 3, "n_instances": 3},
        "optimizer": {"type": "adam", "lr": 1e-3},
        "validation": {"before_training": True, "every_n_epochs": 1, "batch_size": 32, "cmc_top_k": [1, 3]},
        "loggers": loggers,
        "progress_bar": False,
        **changes,
    }
    path = tmp_path / "train.yaml"
    dump_yaml(config, path)
    return path


def train_tiny_run(
    tmp_path: Path,
    *,
    loggers: list[dict[str, Any]],
    epochs: int = 1,
    resume: Path | None = None,
    host: Any = None,
    n_labels: int = 9,
    **changes: Any,
) -> Any:
    """Train the run of :func:`tiny_train_config` (or continue ``resume``); returns the pipeline's TrainResult."""
    from oml_core.pipelines.train import train

    config = tiny_train_config(tmp_path, loggers=loggers, epochs=epochs, n_labels=n_labels, **changes)
    return train(config, resume=resume, host=host)


class TcpRelay:
    """Forwards ``127.0.0.1:<port>`` to ``target_port``; :meth:`cut` closes it and every open connection, as a
    tracker server that went away. Use ``relay.url`` as the tracker's address.

    Example:
        >>> relay = TcpRelay(target_port=5000)   # doctest: +SKIP
        >>> relay.cut()                            # doctest: +SKIP
    """

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self._server = socket.create_server((host, 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._cut:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._cut:  # accepted while cut() ran: this connection must not reach the tracker either
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Stop accepting and close every connection: later requests get 'connection refused'."""
        with self._lock:
            self._cut = True
        # close() alone does not wake the thread blocked in accept() (Linux): that accept would still take one
        # connection, and a keep-alive client would then send everything through it; shutdown() wakes it
        try:
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.close()
                except OSError:
                    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


__all__ = ["TcpRelay", "free_port", "tiny_train_config", "train_tiny_run"]
