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
    """The arguments OML's configs give their tracker loggers, as the tracker plugins' own configs name them
    (OML's mlflow experiment_name is experiment, clearml's project_name / offline_mode are project / offline)."""

    project: str | None = None
    experiment: str | None = None
    tracking_uri: str | None = None
    task_name: str | None = None
    offline: bool = False


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
    cfg = load_pipeline_config(host, out, pipeline=pipeline)
    assert type(cfg).__name__ == ("TrainPostprocessorConfig" if pipeline == "train_postprocessor" else "TrainConfig")
    # OML's mock train config trains a CLIP ViT (vit_clip), which the zoo's CLIP plugin registers
    assert cfg.extractor.type == COMPONENTS["extractor"][data["extractor"]["name"]]
    if isinstance(data.get("optimizer"), dict):
        assert cfg.optimizer.type == COMPONENTS["optimizer"][data["optimizer"]["name"]]
        assert cfg.optimizer.config.lr == float(data["optimizer"]["args"]["lr"])
    if data.get("scheduling"):
        scheduler = data["scheduling"]["scheduler"]
        assert cfg.scheduler is not None and cfg.scheduler.type == COMPONENTS["scheduler"][scheduler["name"]]
        assert cfg.scheduler.config.interval == data["scheduling"]["scheduler_interval"]
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


def test_oml_config_convert_and_check_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `oml config check` also checks that the dataframe exists: the one val_cub.yaml names, read from the working dir
    monkeypatch.chdir(tmp_path)
    dataframe = tmp_path / "data" / "CUB_200_2011" / "df_with_bboxes.csv"
    dataframe.parent.mkdir(parents=True)
    dataframe.write_text("label,path,split,is_query,is_gallery\n")
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
    # OML's tracker logger becomes the tracker plugin's; without that plugin, the error names it
    assert main(["config", "convert", str(CONFIGS / "train_cub.yaml")]) == 0
    assert "type: wandb" in capsys.readouterr().out
    monkeypatch.setenv("OML_DISABLE_PLUGINS", "oml-wandb")
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
    # torch's SGD (OML's) has no momentum; this project's sgd defaults to 0.9, so the conversion says 0
    assert config["optimizer"] == {"type": "sgd", "lr": 1e-5, "momentum": 0.0}
    assert config["device"] == "cpu" and config["epochs"] == 4
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


def test_oml_optimizers_schedulers_and_trackers_map_onto_the_registries(host: Host, tmp_path: Path) -> None:
    base = {
        "dataset_root": "data",
        "dataframe_name": "df.csv",
        "max_epochs": 3,
        "extractor": {"name": "resnet", "args": {"arch": "resnet18", "weights": None}},
        "criterion": {"name": "triplet_with_miner", "args": {"margin": 0.1, "miner": {"name": "all_triplets", "args": {}}}},
        "sampler": {"name": "balance", "args": {"n_labels": 2, "n_instances": 2}},
    }

    def converted(**sections: Any) -> Any:
        conversion = convert_oml_config({**base, **sections})
        out = tmp_path / "converted.yaml"
        out.write_text(yaml.safe_dump(conversion.config))
        return load_pipeline_config(host, out, pipeline="train")

    cfg = converted(
        optimizer={"name": "adamw", "args": {"lr": "1e-3"}},  # YAML reads 1e-3 (no dot) as a string
        scheduling={"scheduler_interval": "step", "scheduler": {"name": "one_cycle", "args": {"max_lr": 0.01, "total_steps": 9}}},
        logger={"name": "clearml", "args": {"project_name": "p", "task_name": "t", "offline_mode": True}},
    )
    assert cfg.optimizer.type == "adamw" and cfg.optimizer.config.lr == 1e-3 and cfg.optimizer.config.weight_decay == 0.01
    assert cfg.optimizer.config.no_decay_on_norms_and_biases is False  # torch's AdamW decays every parameter
    assert cfg.scheduler.type == "one_cycle" and cfg.scheduler.config.interval == "step"
    assert cfg.scheduler.config.max_lr_factor == pytest.approx(10.0)
    assert (cfg.loggers[1].type, cfg.loggers[1].config.project, cfg.loggers[1].config.offline) == ("clearml", "p", True)

    cfg = converted(
        optimizer={"name": "sgd", "args": {"lr": 0.1, "momentum": 0.5}},
        scheduling={
            "scheduler_interval": "epoch",
            "monitor_metric": "OVERALL/map/5",
            "scheduler": {"name": "reduce_on_plateau", "args": {"mode": "max", "factor": 0.5, "patience": 1}},
        },
        logger={"name": "mlflow", "args": {"experiment_name": "e", "tracking_uri": "file:./ml-runs"}},
    )
    assert cfg.optimizer.type == "sgd" and cfg.optimizer.config.momentum == 0.5
    assert (cfg.scheduler.type, cfg.scheduler.config.monitor, cfg.scheduler.config.factor) == ("plateau", "OVERALL/map/5", 0.5)
    assert cfg.loggers[1].config.experiment == "e"

    cfg = converted(
        optimizer={"name": "adam", "args": {"lr": 0.1}},
        scheduling={"scheduler": {"name": "cosine_annealing", "args": {"T_max": 7, "eta_min": 0.001}}},
    )
    assert cfg.optimizer.config.no_decay_on_norms_and_biases is True  # no weight decay: nothing to differ on
    assert (cfg.scheduler.type, cfg.scheduler.config.eta_min) == ("cosine", 0.001)

    # Adam takes no momentum (torch's neither): the converted config is refused naming it
    with pytest.raises(ConfigError, match="momentum"):
        converted(optimizer={"name": "adam", "args": {"lr": 0.1, "momentum": 0.9}})
    with pytest.raises(ConfigError) as info:
        convert_oml_config(
            {**base, "optimizer": {"name": "rmsprop", "args": {"lr": 0.1}},
             "scheduling": {"scheduler_interval": "epoch", "scheduler": {"name": "exponential", "args": {"gamma": 0.9}}}}
        )  # fmt: skip
    assert "2 problems" in str(info.value)
    assert "optimizer 'rmsprop' has no counterpart" in str(info.value)
    assert "scheduler 'exponential' has no counterpart" in str(info.value)
