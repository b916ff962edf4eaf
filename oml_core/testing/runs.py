"""A tiny trained run directory on generated mock data, for tests of what consumes runs (calibrate, serve, export).

Example:
    >>> run_dir, mock_root = make_tiny_run(tmp_path)   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

TINY_RUN_CONFIG: dict = {
    "pipeline": "train",
    "name": "tiny",
    "epochs": 1,
    "device": "cpu",
    "data": {"im_size": 32},
    "extractor": {"type": "simple_cnn", "channels": [8, 16]},
    "criterion": {"type": "triplet_with_miner", "margin": 0.2, "miner": {"type": "hard_triplets"}},
    "sampler": {"type": "balance", "n_labels": 3, "n_instances": 3},
    "optimizer": {"type": "adam", "lr": 1e-3},
    "validation": {"before_training": False, "every_n_epochs": 1, "batch_size": 32},
    "loggers": [],
    "progress_bar": False,
}


def make_tiny_run(
    tmp_path: Path, *, n_labels: int = 12, n_instances: int = 4, extractor: dict | None = None, im_size: int = 32
) -> tuple[Path, Path]:
    """Generate mock data under ``tmp_path/mock`` and train one epoch of a small CNN (or of ``extractor``, a config
    such as ``{"type": "resnet", "arch": "resnet18", "weights": None}``); returns ``(run_dir, mock_root)`` (a few
    seconds on CPU with the small CNN)."""
    from oml_core.config import dump_yaml
    from oml_core.data import download_mock_dataset
    from oml_core.pipelines.train import train

    mock_root = Path(tmp_path) / "mock"
    download_mock_dataset(mock_root, n_labels=n_labels, n_instances=n_instances, im_size=im_size)
    config = dict(TINY_RUN_CONFIG)
    if extractor is not None:
        config["extractor"] = extractor
    config["data"] = {"im_size": im_size, "dataframe": str(mock_root / "df.csv"), "dataset_root": str(mock_root)}
    config["run_dir"] = str(Path(tmp_path) / "runs")
    path = Path(tmp_path) / "tiny_train.yaml"
    dump_yaml(config, path)
    result = train(path)
    return Path(result.run_dir), mock_root
