"""``oml train / validate / predict`` end to end on a small mock dataset, with the real plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from oml_core import ConfigError, OMLError
from oml_core.cli import main
from oml_core.config import dump_yaml, load_yaml
from oml_core.data import download_mock_dataset
from oml_core.engine import load_checkpoint_file
from oml_core.pipelines.train import predict, train, validate

CONFIG = {
    "pipeline": "train",
    "name": "tiny",
    "epochs": 2,
    "device": "cpu",
    "data": {"dataframe": "df.csv", "im_size": 32},
    "extractor": {"type": "resnet", "arch": "resnet18", "weights": None},
    "criterion": {"type": "triplet_with_miner", "margin": 0.2, "miner": {"type": "hard_triplets"}},
    "sampler": {"type": "balance", "n_labels": 3, "n_instances": 3},
    "optimizer": {"type": "adam", "lr": 1e-3},
    "validation": {
        "before_training": True,
        "every_n_epochs": 1,
        "batch_size": 32,
        "cmc_top_k": [1, 3],
        "precision_top_k": [3],
        "map_top_k": [3],
    },
    "loggers": [{"type": "csv"}, {"type": "tensorboard"}],
    "progress_bar": False,
}


@pytest.fixture(scope="module")
def mock_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mock")
    download_mock_dataset(root, n_labels=9, n_instances=4, im_size=32)
    return root


def write_config(tmp_path: Path, mock_root: Path, **changes) -> Path:
    config = {**CONFIG, **changes}
    config["data"] = {**CONFIG["data"], "dataframe": str(mock_root / "df.csv"), "dataset_root": str(mock_root)}
    config["run_dir"] = str(tmp_path / "runs")
    path = tmp_path / "train.yaml"
    dump_yaml(config, path)
    return path


def test_train_writes_a_complete_run_directory_and_resumes(tmp_path: Path, mock_root: Path) -> None:
    config = write_config(tmp_path, mock_root)
    result = train(config)
    run = result.run_dir
    assert result.status == "completed" and result.epochs == 2 and result.steps > 0
    for name in ["config.yaml", "environment.json", "metrics.csv", "metrics.json", "checkpoints/last.pt", "checkpoints/best.pt"]:
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(list((run / "figures").glob("worst_queries_cmc@1_step*.png"))) == 3  # before training, 2 epochs
    resolved = load_yaml(run / "config.yaml")
    assert resolved["optimizer"] == {
        "type": "adam", "lr": 1e-3, "backbone_lr": None, "weight_decay": 0.0, "no_decay_on_norms_and_biases": True,
        "betas": [0.9, 0.999], "eps": 1e-08,
    }  # fmt: skip
    environment = json.loads((run / "environment.json").read_text())
    assert {"oml_resnet", "oml_losses", "oml_samplers"} <= {p["name"] for p in environment["plugins"]}
    summary = json.loads((run / "metrics.json").read_text())
    assert (
        set(summary["before"])
        == set(summary["after"])
        >= {"OVERALL/cmc/1", "OVERALL/cmc/3", "OVERALL/precision/3", "OVERALL/map/3"}
    )
    assert [row["epoch"] for row in summary["history"]] == [0, 1, 2]
    steps_after_two = load_checkpoint_file(run / "checkpoints" / "last.pt")["state"]["step"]

    resumed = train(config, overrides=["epochs=3"], resume=run)
    assert resumed.run_dir == run and resumed.epochs == 3
    assert resumed.steps == steps_after_two * 3 // 2
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,name,value" and rows.count("step,name,value") == 1


def test_validate_and_predict_from_a_checkpoint(tmp_path: Path, mock_root: Path) -> None:
    loggers = [{"type": "csv", "log_figures": False}, {"type": "tensorboard", "log_figures": False}]
    config = write_config(tmp_path, mock_root, epochs=1, loggers=loggers)
    result = train(config)
    assert not (result.run_dir / "figures").exists()  # no worst-queries figure was drawn
    checkpoint = result.run_dir / "checkpoints" / "last.pt"
    metrics = validate(config, checkpoint=checkpoint)
    assert metrics["OVERALL"]["cmc"][1] == pytest.approx(result.metrics_after["OVERALL/cmc/1"], abs=1e-6)

    out = predict(config, checkpoint=checkpoint, out=tmp_path / "emb.pt", split="validation")
    payload = torch.load(out, weights_only=True)
    n_val = sum(1 for line in (mock_root / "df.csv").read_text().splitlines()[1:] if ",validation," in line)
    assert payload["embeddings"].shape == (n_val, 512) and len(payload["paths"]) == n_val


def test_local_plugin_named_in_the_config_runs(tmp_path: Path, mock_root: Path) -> None:
    (tmp_path / "my_hooks.py").write_text(
        "from oml_core import hookimpl\n"
        "SEEN = []\n"
        "@hookimpl\n"
        "def oml_epoch_end(engine):\n"
        "    (engine.run_dir / f'epoch{engine.state.epoch}.txt').write_text(str(engine.state.step))\n"
    )
    config = write_config(
        tmp_path,
        mock_root,
        epochs=1,
        plugins={"local": ["my_hooks.py"]},
        validation={"before_training": False, "every_n_epochs": 0},
    )
    result = train(config)
    assert (result.run_dir / "epoch1.txt").read_text() == str(result.steps)


def test_config_problems_and_missing_files_are_clear(tmp_path: Path, mock_root: Path, capsys) -> None:
    config = write_config(tmp_path, mock_root, epochs="two", sampler={"type": "balance", "n_labels": 3, "n_instance": 3})
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "$.epochs: expected an integer, got 'two'" in err and "unknown key 'n_instance' (did you mean 'n_instances'?)" in err
    config = write_config(tmp_path, mock_root, plugins={"local": ["nowhere.py"]})
    with pytest.raises(ConfigError, match="plugin file 'nowhere.py' not found"):
        train(config)
    with pytest.raises(OMLError, match="neither a checkpoint file nor a run directory"):
        train(write_config(tmp_path, mock_root), resume=tmp_path / "missing.pt")


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OML_")}
    env.update({"OMP_NUM_THREADS": "1"})
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "oml_core.cli",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=240)


def test_ddp_two_cpu_processes_validate_like_one_and_train(tmp_path: Path, mock_root: Path) -> None:
    (tmp_path / "record_batches.py").write_text(
        "import json, torch.distributed as dist\n"
        "from oml_core import hookimpl\n"
        "@hookimpl\n"
        "def oml_train_batch_end(engine, batch):\n"
        "    path = engine.run_dir / f'batches-rank{engine.state.rank}.jsonl'\n"
        "    with path.open('a') as f:\n"
        "        f.write(json.dumps(batch['idx'].tolist()) + '\\n')\n"
    )
    config = write_config(tmp_path, mock_root, epochs=1, plugins={"local": ["record_batches.py"]})
    single = train(config)
    checkpoint = single.run_dir / "checkpoints" / "last.pt"
    expected = validate(config, checkpoint=checkpoint)

    result = _torchrun("validate", str(config), "--checkpoint", str(checkpoint), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    distributed = json.loads(result.stdout)
    for name, value in distributed.items():
        category, metric, k = name.split("/")
        assert value == pytest.approx(float(expected[category][metric][int(k)]), abs=1e-6), name

    result = _torchrun("train", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    batches = [[json.loads(line) for line in (run_dir / f"batches-rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    assert len(batches[0]) == len(batches[1]) > 0  # same epoch length on each rank
    assert batches[0] != batches[1]  # different batches
    assert (run_dir / "checkpoints" / "last.pt").is_file() and len(list(run_dir.glob("metrics.csv"))) == 1


def test_config_check_knows_every_registered_pipeline(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)  # the configs name mock_dataset/df.csv, relative to the working directory
    assert main(["config", "check", str(repo / "configs" / "train_mock.yaml")]) == 2  # the dataframe must exist
    assert "$.data.dataframe: mock_dataset/df.csv does not exist" in capsys.readouterr().err
    download_mock_dataset(tmp_path / "mock_dataset", n_labels=6, n_instances=2, im_size=16)
    assert main(["config", "check", str(repo / "configs" / "train_mock.yaml")]) == 0
    assert main(["config", "check", str(repo / "configs" / "train_postprocessor_mock.yaml")]) == 0
    assert "OK (TrainPostprocessorConfig)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: tranin\n")
    assert main(["config", "check", str(bad)]) == 2
    assert "$.pipeline: unknown pipeline 'tranin'; available: train, train_postprocessor" in capsys.readouterr().err
    # oml embed's config is not a pipeline's, and is checked by its own schema, dataframe and files
    embed = tmp_path / "embed.yaml"
    embed.write_text("pipeline: embed\ndataframe: mock_dataset/df.csv\nextractor: {type: resnet, arch: resnet18}\n")
    assert main(["config", "check", str(embed), "--data"]) == 0
    assert "OK (EmbedConfig)" in capsys.readouterr().out
    assert main(["config", "check", str(embed), "--set", "im_size=big"]) == 2
    assert "$.im_size: expected an integer" in capsys.readouterr().err
    (tmp_path / "mock_dataset" / "images").rename(tmp_path / "mock_dataset" / "moved")
    assert main(["config", "check", str(embed)]) == 0  # without --data only the dataframe file is looked at
    capsys.readouterr()
    assert main(["config", "check", str(embed), "--data"]) == 2
    err = capsys.readouterr().err
    assert "[missing_file] 12 file(s) do not exist under dataset_root" in err and "rows 0, 1, 2" in err
