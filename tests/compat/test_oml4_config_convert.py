"""OML 4's own pipeline configs (copied into ``oml4_configs/`` as data: the mock dataset's test configs, InShop, SOP,
CUB, Cars and the pairwise post-processing ones) converted by ``oml config convert`` and checked like any config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from oml_core import Host, hookimpl
from oml_core.cli import main
from oml_core.config import load_yaml
from oml_core.errors import ConfigError
from oml_core.pipelines import load_pipeline_config
from oml_core.pipelines.convert import COMPONENTS, convert_oml_config, looks_like_oml_config

CONFIGS = Path(__file__).parent / "oml4_configs"
TRACKERS = ("wandb", "neptune", "mlflow", "clearml")
#: configs that use something without a counterpart here, and what the error names
UNCONVERTIBLE = {
    "mock_validate.yaml": ["$.postprocessor"],  # validation with a re-ranker: oml train-postprocessor validates that
    "mock_train_with_bboxes.yaml": ["custom_augmentations", "reduce_on_plateau", "$.bs_train"],  # OML's test-only parts
}


@attrs.frozen(kw_only=True)
class TrackerStandIn:
    """The arguments OML's configs give their tracker loggers (the tracker plugins' own configs take these)."""

    project: str | None = None
    experiment_name: str | None = None
    tracking_uri: str | None = None
    project_name: str | None = None
    task_name: str | None = None
    offline_mode: bool = False


class TrackerPlugin:
    """Stands in for the tracker-logger plugins, which register OML's logger names."""

    @hookimpl
    def oml_register_loggers(self, registry: Any) -> None:
        for name in TRACKERS:
            registry.add(name, config=TrackerStandIn, factory=lambda **kw: None, summary=f"{name} (stand-in)")


@pytest.fixture(scope="module")
def host() -> Host:
    host = Host()
    if not all(name in host.registries.loggers.names() for name in TRACKERS):
        host.register(TrackerPlugin())
    return host


def _convertible() -> list[str]:
    return sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name not in UNCONVERTIBLE)


def test_the_configs_cover_what_oml_ships() -> None:
    names = {p.name for p in CONFIGS.glob("*.yaml")}
    for dataset in ("cub", "sop", "inshop", "cars"):
        assert {f"train_{dataset}.yaml", f"val_{dataset}.yaml", f"predict_{dataset}.yaml"} <= names
    assert {"mock_train.yaml", "mock_validate.yaml", "mock_predict.yaml", "mock_train_postprocessor.yaml"} <= names
    assert {"pairwise_postprocessor_train.yaml", "pairwise_extractor_train.yaml", "pairwise_extractor_validate.yaml"} <= names


@pytest.mark.parametrize("name", _convertible())
def test_oml4_config_converts_and_validates(name: str, host: Host, tmp_path: Path) -> None:
    data = load_yaml(CONFIGS / name)
    assert looks_like_oml_config(data)
    conversion = convert_oml_config(data, source=name)
    out = tmp_path / name
    out.write_text(yaml.safe_dump(conversion.config))
    pipeline = conversion.config["pipeline"]
    if conversion.config["extractor"]["type"] not in host.registries.extractors.names():
        # OML's mock train config trains a CLIP ViT, which the zoo's CLIP plugin registers
        with pytest.raises(ConfigError, match=f"unknown extractors component '{conversion.config['extractor']['type']}'"):
            load_pipeline_config(host, out, pipeline=pipeline)
        return
    cfg = load_pipeline_config(host, out, pipeline=pipeline)
    assert type(cfg).__name__ == ("TrainPostprocessorConfig" if pipeline == "train_postprocessor" else "TrainConfig")
    # what the OML file says is what the converted config holds
    if "max_epochs" in data:
        assert cfg.epochs == data["max_epochs"]
    if "dataframe_name" in data:
        assert cfg.data.dataframe == Path(str(data["dataset_root"]).rstrip("/")) / data["dataframe_name"]
    if "bs_val" in data:
        assert cfg.validation.batch_size == data["bs_val"]
    for key in ("cmc_top_k", "map_top_k"):
        if key in data.get("metric_args", {}) and pipeline == "train":
            assert list(getattr(cfg.validation, key)) == list(data["metric_args"][key])
    if "sampler" in data:
        assert cfg.sampler.type == data["sampler"]["name"] and cfg.sampler.config.n_labels == data["sampler"]["args"]["n_labels"]
    if "criterion" in data and data["criterion"]["name"] == "triplet_with_miner":
        miner = data["criterion"]["args"]["miner"]
        assert (
            cfg.criterion.type == "triplet_with_miner" and cfg.criterion.config.miner.type == COMPONENTS["miner"][miner["name"]]
        )


@pytest.mark.parametrize("name", sorted(UNCONVERTIBLE))
def test_what_has_no_counterpart_is_one_clear_error(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        convert_oml_config(load_yaml(CONFIGS / name), source=name)
    message = str(info.value)
    assert message.startswith(f"{name} has {len(UNCONVERTIBLE[name])} problem")
    assert all(part in message for part in UNCONVERTIBLE[name])


def test_oml_config_convert_and_check_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "val_cub_converted.yaml"
    assert main(["config", "convert", str(CONFIGS / "val_cub.yaml"), "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# converted from OML 4's") and "# note: $.hydra: dropped" in text
    assert main(["config", "check", str(out)]) == 0
    assert "OK (TrainConfig)" in capsys.readouterr().out
    # the OML file itself is checked (converted on the fly, with a note)
    assert main(["config", "check", str(CONFIGS / "val_cub.yaml")]) == 0
    captured = capsys.readouterr()
    assert "is an OML 4 config, converted on the fly" in captured.err and "OK (TrainConfig)" in captured.out
    # a tracker logger without its plugin: the error names it
    assert main(["config", "convert", str(CONFIGS / "train_cub.yaml")]) != 0
    assert "unknown loggers component 'wandb'" in capsys.readouterr().err


def test_conversion_details() -> None:
    data = {
        "weights": "w.ckpt",
        "dataset_root": "data/",
        "dataframe_name": "df.csv",
        "max_epochs": 4,
        "accelerator": "cpu",
        "defaults": [{"optimizer": "sgd"}],
        "extractor": {"name": "vit", "args": {"arch": "vits16", "weights": "${weights}"}},
        "criterion": {"name": "triplet_with_miner", "args": {"margin": None, "miner": {"name": "hard_triplets", "args": {}}}},
        "sampler": {"name": "balance", "args": {"n_labels": 2, "n_instances": 2}},
        "transforms_val": {"name": "norm_resize_hypvit_torch", "args": {"im_size": 256, "crop_size": 224}},
        "scheduling": {"scheduler_interval": "step", "scheduler": {"name": "multi_step", "args": {"milestones": [3]}}},
        "logs_folder": "${now:%Y-%m-%d}_x",
    }
    conversion = convert_oml_config(data)
    config = conversion.config
    assert config["extractor"] == {"type": "vit", "arch": "vits16", "weights": "w.ckpt"}
    assert config["criterion"] == {"type": "triplet_with_miner", "margin": None, "miner": {"type": "hard_triplets"}}
    assert config["optimizer"] == {"type": "sgd", "lr": 1e-5} and config["device"] == "cpu" and config["epochs"] == 4
    assert config["scheduler"] == {"type": "multistep", "milestones": [3], "interval": "step"}
    assert (
        config["data"]["transforms_val"] == [{"type": "norm_resize_torch", "im_size": 224}] and config["data"]["im_size"] == 224
    )
    assert any("logs_folder: dropped" in note for note in conversion.notes)
    bad = {**data, "criterion": {"name": "triplet", "args": {}}, "miner_x": 1, "sampler": {"name": "nope"}}
    with pytest.raises(ConfigError) as info:
        convert_oml_config(bad, source="theirs.yaml")
    assert "3 problems" in str(info.value) and "'triplet' has no counterpart" in str(info.value)
    assert "$.miner_x" in str(info.value) and "unknown OML sampler 'nope'" in str(info.value)


def test_oml_train_converts_an_oml_config_on_the_fly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from oml_core.data import generate_mock_dataset

    generate_mock_dataset(tmp_path / "mock", n_labels=6, n_instances=4, im_size=16)
    monkeypatch.chdir(tmp_path)
    theirs = {
        "seed": 1,
        "accelerator": "cpu",
        "devices": 1,
        "dataset_root": "mock",
        "dataframe_name": "df.csv",
        "logs_root": "logs",
        "num_workers": 0,
        "transforms_train": {"name": "norm_resize_torch", "args": {"im_size": 16}},
        "transforms_val": {"name": "norm_resize_albu", "args": {"im_size": 16}},
        "extractor": {"name": "resnet", "args": {"arch": "resnet18", "weights": None, "normalise_features": False}},
        "criterion": {"name": "triplet_with_miner", "args": {"margin": 0.1, "miner": {"name": "all_triplets", "args": {}}}},
        "sampler": {"name": "balance", "args": {"n_labels": 2, "n_instances": 2}},
        "optimizer": {"name": "adam", "args": {"lr": 1e-4}},
        "scheduling": None,
        "bs_val": 8,
        "max_epochs": 1,
        "valid_period": 1,
        "metric_args": {"cmc_top_k": [1], "map_top_k": [2], "precision_top_k": [], "pcf_variance": []},
        "metric_for_checkpointing": "OVERALL/cmc/1",
        "logger": {"name": "tensorboard", "args": {"save_dir": "."}},
        "hydra": {"run": {"dir": "${logs_root}"}},
    }
    (tmp_path / "theirs.yaml").write_text(yaml.safe_dump(theirs))
    assert main(["train", "theirs.yaml", "--set", "progress_bar=false"]) == 0
    captured = capsys.readouterr()
    assert "theirs.yaml is an OML 4 config, converted on the fly" in captured.err
    assert "OML's transforms 'norm_resize_albu' is 'norm_resize_torch' here" in captured.err
    (run,) = (tmp_path / "logs").iterdir()
    report = json.loads((run / "metrics.json").read_text())
    assert report["status"] == "completed" and report["epochs"] == 1
    assert set(report["after"]) == {"OVERALL/cmc/1", "OVERALL/map/2"}
    assert list(run.rglob("events.out.tfevents.*"))  # OML's tensorboard logger became ours
