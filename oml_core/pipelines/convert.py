"""OML 4's Hydra-style pipeline configs (``name:`` / ``args:``, ``max_epochs``, ``dataset_root`` + ``dataframe_name``,
``metric_args`` ...) converted to this project's pipeline configs.

Everything OML-specific is in the tables below (:data:`COMPONENTS`, :data:`TOP_LEVEL`, :data:`OML_DEFAULTS`), so that
a renamed registry entry or a new config section is a one-line change. What has no counterpart is an error (all of
them in one report); what only changes how the run is executed (GPUs, Hydra's folders, tags) is dropped with a note.

Example:
    >>> oml = {"max_epochs": 2, "dataset_root": "data", "dataframe_name": "df.csv",
    ...        "extractor": {"name": "vit", "args": {"arch": "vits16", "weights": None}},
    ...        "criterion": {"name": "triplet_with_miner", "args": {"margin": 0.1}},
    ...        "sampler": {"name": "balance", "args": {"n_labels": 2, "n_instances": 2}}}
    >>> converted = convert_oml_config(oml)
    >>> converted.config["epochs"], converted.config["data"]["dataframe"], converted.config["extractor"]
    (2, 'data/df.csv', {'type': 'vit', 'arch': 'vits16', 'weights': None})
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from oml_core.errors import ConfigError

# ================================================================================================ the tables
#: OML 4's registry names -> this project's, per component kind; None: no counterpart here (an error).
COMPONENTS: dict[str, dict[str, str | None]] = {
    "extractor": {
        "vit": "vit",
        "resnet": "resnet",
        "extractor_with_mlp": "extractor_with_mlp",
        "vit_clip": "vit_clip",  # registered by the zoo's CLIP plugin
        "vit_unicom": "vit_unicom",  # registered by the zoo's Unicom plugin
        "ecapa_tdnn": "ecapa_tdnn",  # registered by oml-audio
    },
    "criterion": {
        "triplet_with_miner": "triplet_with_miner",
        "arcface": "arcface",
        "mlp_arcface": "mlp_arcface",
        "surrogate_precision": "surrogate_precision",
        "triplet": None,
        "triplet_plain": None,
    },
    "miner": {
        "all_triplets": "all_triplets",
        "hard_triplets": "hard_triplets",
        "n_hard_triplets": "n_hard_triplets",
        "hard_cluster": "hard_cluster",
        "triplets_with_memory": "triplets_with_memory",
        "miner_with_bank": None,
    },
    "sampler": {
        "balance": "balance",
        "category_balance": "category_balance",
        "distinct_category_balance": "distinct_category_balance",
    },
    "pairwise_model": {
        "concat_siamese": "concat_siamese",
        "linear_siamese": "linear_siamese",
        "trivial_distance_siamese": "trivial_distance_siamese",
        "linear_trivial_distance_siamese": None,
    },
    "transforms": {
        "norm_torch": "norm_torch",
        "norm_resize_torch": "norm_resize_torch",
        "augs_torch": "augs_torch",
        # albumentations is not used here: the torch presets do the same job
        "norm_albu": "norm_torch",
        "norm_resize_albu": "norm_resize_torch",
        "augs_albu": "augs_torch",
        "norm_resize_albu_clip": "norm_resize_torch",
        "augs_hypvit_torch": "augs_torch",
        "norm_resize_hypvit_torch": "norm_resize_torch",
        "unicom_transforms": None,
    },
    "logger": {"tensorboard": "tensorboard", "wandb": "wandb", "neptune": "neptune", "mlflow": "mlflow", "clearml": "clearml"},
    # the ``optimizers`` and ``schedulers`` registries (oml_core.engine.optimizers / schedulers)
    "optimizer": {
        "adam": "adam",
        "adamw": "adamw",
        "sgd": "sgd",
        **dict.fromkeys(("adadelta", "adagrad", "adamax", "asgd", "lbfgs", "rmsprop", "rprop"), None),
    },
    "scheduler": {
        "cosine_annealing": "cosine",
        "step": "step",
        "multi_step": "multistep",
        "one_cycle": "one_cycle",
        "reduce_on_plateau": "plateau",
        **dict.fromkeys(("lambda", "multiplicative", "exponential", "cyclic"), None),
    },
}

#: Arguments renamed (new name) or dropped (None, with a note) per ``(kind, OML name)``; ``"*"`` matches any name.
ARGUMENTS: dict[tuple[str, str], dict[str, str | None]] = {
    ("transforms", "norm_resize_hypvit_torch"): {"crop_size": None},
    ("logger", "tensorboard"): {"save_dir": None},
    ("logger", "mlflow"): {"experiment_name": "experiment"},
    ("logger", "clearml"): {"project_name": "project", "offline_mode": "offline"},
    # torch's own learning-rate arguments: here the optimizer's are used, and the schedule spans the whole run
    ("scheduler", "*"): {"last_epoch": None, "verbose": None},
    ("scheduler", "cosine_annealing"): {"T_max": None},
    ("scheduler", "one_cycle"): {"total_steps": None, "epochs": None, "steps_per_epoch": None},
}

#: torch's defaults where this project's optimizers default otherwise (torch's SGD has no momentum): set in the
#: converted config, so that an OML config trains as it did.
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {"sgd": {"momentum": 0.0}}
#: torch's weight decay per optimizer, which it applies to every parameter (norms and biases too, unlike here).
TORCH_WEIGHT_DECAY = {"sgd": 0.0, "adam": 0.0, "adamw": 0.01}

#: OML 4's packaged config groups (``defaults: [{optimizer: sgd}]``), as OML 4.0 ships them.
OML_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("optimizer", "sgd"): {"name": "sgd", "args": {"lr": 1e-5}},
    ("optimizer", "adam"): {"name": "adam", "args": {"lr": 1e-5}},
    ("optimizer", "adamw"): {"name": "adamw", "args": {"lr": 1e-5}},
    ("sampler", "balance"): {"name": "balance", "args": {"n_labels": 2, "n_instances": 2}},
    ("sampler", "category_balance"): {
        "name": "category_balance",
        "args": {"n_labels": 2, "n_instances": 2, "n_categories": 1, "resample_labels": False, "weight_categories": True},
    },
    ("sampler", "distinct_category_balance"): {
        "name": "distinct_category_balance",
        "args": {"n_labels": 2, "n_instances": 2, "n_categories": 1, "epoch_size": 10},
    },
}

#: Top-level keys of OML's configs: where each goes (a dotted path here), or None (dropped with a note).
TOP_LEVEL: dict[str, str | None] = {
    "seed": "seed",
    "max_epochs": "epochs",
    "logs_root": "run_dir",
    "num_workers": "data.num_workers",
    "cache_size": "data.cache_size",
    "bs_val": "validation.batch_size",
    "bs": "validation.batch_size",
    "batch_size_inference": "validation.batch_size",
    "valid_period": "validation.every_n_epochs",
    "metric_for_checkpointing": "checkpoint.monitor",
    "mode_for_checkpointing": "checkpoint.mode",
    # how and where OML's runner executes, not what is trained
    "postfix": None,
    "precision": None,
    "devices": None,
    "find_unused_parameters": None,
    "logs_folder": None,
    "hydra_dir": None,
    "hydra": None,
    "tags": None,
    "log_images": None,
    "lightning_trainer_extra_args": None,
    "embeddings_cache_dir": None,
    "save_dir": None,
}

#: ``metric_args`` keys that are validation options here; the others only shape OML's logs.
METRIC_ARGS = ("cmc_top_k", "precision_top_k", "map_top_k", "fmr_vals", "pcf_variance")
#: Keys of OML 4's configs that this project's configs never have: their presence marks an OML config.
OML_MARKERS = ("max_epochs", "dataframe_name", "bs_val", "valid_period", "metric_args", "transforms_val", "transforms_train",
               "transforms_predict", "hydra", "defaults", "scheduling", "logs_root")  # fmt: skip
#: Placeholders for the sections that ``oml validate`` / ``oml predict`` configs need but do not use.
UNUSED_TRAINING = {"criterion": {"type": "triplet_with_miner"}, "sampler": {"type": "balance", "n_labels": 2, "n_instances": 2}}


@attrs.frozen
class Conversion:
    """A converted config (plain data, ready for ``yaml.safe_dump``), its pipeline and notes on what changed."""

    config: dict[str, Any]
    pipeline: str
    notes: list[str]


def looks_like_oml_config(data: Any) -> bool:
    """Whether ``data`` (a loaded YAML mapping) is one of OML 4's pipeline configs rather than one of ours.

    Example:
        >>> looks_like_oml_config({"max_epochs": 3}), looks_like_oml_config({"pipeline": "train", "epochs": 3})
        (True, False)
    """
    if not isinstance(data, Mapping) or "pipeline" in data:
        return False
    if any(key in data for key in OML_MARKERS):
        return True
    return any(isinstance(v, Mapping) and "name" in v and set(v) <= {"name", "args"} for v in data.values())


# ================================================================================================ conversion
class _Converter:
    def __init__(self, data: Mapping[str, Any], source: str | None) -> None:
        self.source = source
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.raw = dict(data)
        #: top-level keys that other keys refer to (``weights: ...`` used as ``${weights}``): consumed there
        self.referenced: set[str] = set()
        self.data = self._resolve(copy.deepcopy(self.raw), "$")

    # -------------------------------------------------------------------------------------------- Hydra
    _INTERPOLATION = re.compile(r"\$\{([^}]*)\}")

    def _lookup(self, reference: str, where: str) -> Any:
        self.referenced.add(reference.split(".")[0])
        value: Any = self.raw
        for part in reference.split("."):
            if not isinstance(value, Mapping) or part not in value:
                self.problems.append(f"{where}: ${{{reference}}} refers to nothing in the file")
                return None
            value = value[part]
        return self._resolve(copy.deepcopy(value), where)

    def _resolve(self, value: Any, where: str) -> Any:
        """Hydra's ``${key}`` references to other keys of the file (``${now:...}`` and other resolvers stay)."""
        if isinstance(value, dict):
            return {k: self._resolve(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = self._INTERPOLATION.fullmatch(value)
        if whole and ":" not in whole.group(1):
            return self._lookup(whole.group(1), where)

        def substitute(match: re.Match[str]) -> str:
            if ":" in match.group(1):
                return match.group(0)
            return str(self._lookup(match.group(1), where))

        return self._INTERPOLATION.sub(substitute, value)

    # -------------------------------------------------------------------------------------------- components
    def component(self, kind: str, value: Any, where: str) -> dict[str, Any] | None:
        """``{name: X, args: {...}}`` -> ``{type: ours(X), ...args}`` (nested components converted too)."""
        if value is None:
            return None
        if not isinstance(value, Mapping) or "name" not in value:
            self.problems.append(f"{where}: expected OML's {{name: ..., args: {{...}}}}, got {value!r}")
            return None
        extra = set(value) - {"name", "args"}
        if extra:
            self.problems.append(f"{where}: unexpected keys {sorted(extra)} next to name/args")
        name = str(value["name"])
        names = COMPONENTS[kind]
        if name not in names:
            self.problems.append(f"{where}.name: unknown OML {kind} {name!r}; known: {', '.join(sorted(names))}")
            return None
        ours = names[name]
        if ours is None:
            self.problems.append(f"{where}.name: OML's {kind} {name!r} has no counterpart here; choose another {kind}")
            return None
        if ours != name:
            self.notes.append(f"{where}: OML's {kind} {name!r} is {ours!r} here")
        args = dict(value.get("args") or {})
        renames = {**ARGUMENTS.get((kind, "*"), {}), **ARGUMENTS.get((kind, name), {})}
        out: dict[str, Any] = {"type": ours}
        for key, arg in args.items():
            target = renames.get(key, key)
            if target is None:
                self.notes.append(f"{where}.args.{key}: dropped ({key}={arg!r} has no counterpart for {ours!r})")
                continue
            out[target] = self._nested(arg, f"{where}.args.{key}", key)
        return out

    def _nested(self, value: Any, where: str, key: str) -> Any:
        kind = {"miner": "miner", "extractor": "extractor", "pairwise_model": "pairwise_model"}.get(key)
        if kind and isinstance(value, Mapping) and "name" in value:
            return self.component(kind, value, where)
        return value

    def transforms(self, value: Any, where: str) -> tuple[list[dict[str, Any]], int | None]:
        converted = self.component("transforms", value, where)
        if converted is None:
            return [], None
        size = converted.get("im_size")
        crop = (value.get("args") or {}).get("crop_size") if isinstance(value, Mapping) else None
        if crop is not None:  # resize then centre-crop: here the image is resized to the crop size directly
            converted["im_size"] = size = crop
        return [converted], size

    def optimizer(self, value: Any, where: str) -> dict[str, Any] | None:
        converted = self.component("optimizer", value, where)
        if converted is None:
            return None
        torch_defaults = {k: v for k, v in OPTIMIZER_DEFAULTS.get(converted["type"], {}).items() if k not in converted}
        converted.update(torch_defaults)
        if _number(converted.get("weight_decay", TORCH_WEIGHT_DECAY.get(converted["type"], 0.0))):
            converted.setdefault("no_decay_on_norms_and_biases", False)
        return converted

    def _optimizer_lr(self) -> float | None:
        optimizer = self.data.get("optimizer")
        args = optimizer.get("args") if isinstance(optimizer, Mapping) else None
        return _number(args.get("lr")) if isinstance(args, Mapping) else None

    def scheduler(self, value: Any, where: str) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping) or "scheduler" not in value:
            self.problems.append(f"{where}: expected {{scheduler: {{name, args}}, scheduler_interval: ...}}, got {value!r}")
            return None
        extra = set(value) - {"scheduler", "scheduler_interval", "scheduler_frequency", "monitor_metric"}
        if extra:
            self.problems.append(f"{where}: unexpected keys {sorted(extra)} next to scheduler/scheduler_interval")
        converted = self.component("scheduler", value["scheduler"], f"{where}.scheduler")
        if converted is None:
            return None
        interval = value.get("scheduler_interval", "epoch")
        if interval not in ("epoch", "step"):
            self.problems.append(f"{where}.scheduler_interval: {interval!r} must be epoch or step")
        if int(value.get("scheduler_frequency", 1)) != 1:
            self.problems.append(f"{where}.scheduler_frequency: only 1 is supported here")
        if converted["type"] == "plateau":
            self._plateau(converted, value, interval, where)
        else:
            converted["interval"] = interval
        if converted["type"] == "one_cycle" and "max_lr" in converted:
            self._one_cycle(converted, where)
        return converted

    def _plateau(self, converted: dict[str, Any], value: Mapping[str, Any], interval: Any, where: str) -> None:
        """OML's reduce_on_plateau follows ``monitor_metric``; here plateau follows a validation metric, per epoch."""
        if interval != "epoch":
            self.problems.append(f"{where}.scheduler_interval: OML's reduce_on_plateau steps per validation here (epoch)")
        monitor = value.get("monitor_metric")
        if monitor is None:
            self.problems.append(f"{where}.monitor_metric: OML's reduce_on_plateau needs the metric it follows")
        elif "/" not in str(monitor):  # validation metrics are OVERALL/cmc/1, <category>/map/5 ...
            self.problems.append(
                f"{where}.monitor_metric: OML's reduce_on_plateau follows {monitor!r}, a training-loss log; here plateau "
                "follows a validation metric: set monitor_metric to one (e.g. OVERALL/cmc/1) and mode to max"
            )
        else:
            converted["monitor"] = str(monitor)

    def _one_cycle(self, converted: dict[str, Any], where: str) -> None:
        """OML's absolute ``max_lr`` becomes ``max_lr_factor`` (a multiple of the optimizer's LR) here."""
        given = converted.pop("max_lr")
        max_lr, lr = _number(given), self._optimizer_lr()
        if max_lr is None or lr is None or lr <= 0:
            self.problems.append(
                f"{where}.scheduler.args.max_lr: {given!r} is given here as max_lr_factor, a multiple of the optimizer's "
                "lr: give optimizer.args.lr and max_lr as numbers, or write max_lr_factor yourself"
            )
            return
        converted["max_lr_factor"] = max_lr / lr
        self.notes.append(f"{where}.scheduler.args.max_lr: {max_lr} is max_lr_factor={max_lr / lr:g} x lr={lr:g} here")

    def defaults(self, value: Any) -> None:
        for entry in value or []:
            if not isinstance(entry, Mapping) or len(entry) != 1:
                self.problems.append(f"$.defaults: expected entries like {{optimizer: sgd}}, got {entry!r}")
                continue
            ((group, name),) = entry.items()
            if group in self.data:
                continue  # the file's own section wins, as in Hydra
            if (group, name) not in OML_DEFAULTS:
                self.problems.append(f"$.defaults: OML's packaged config {group}/{name} is not known here; write the section out")
                continue
            self.data[group] = copy.deepcopy(OML_DEFAULTS[(group, name)])
            self.notes.append(f"$.defaults: {group}/{name} is OML 4's packaged {OML_DEFAULTS[(group, name)]}")


def _number(value: Any) -> float | None:
    """A number from YAML, where ``1e-5`` (no dot) loads as a string."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _put(config: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        config = config.setdefault(part, {})
    config[parts[-1]] = value


def _pipeline_of(data: Mapping[str, Any]) -> str:
    if "pairwise_model" in data:
        return "train_postprocessor"
    if "criterion" in data:
        return "train"
    if "transforms_predict" in data:
        return "predict"
    return "validate"


def convert_oml_config(data: Mapping[str, Any], *, source: str | None = None) -> Conversion:
    """Convert one of OML 4's pipeline configs (loaded YAML) to this project's; raise :class:`ConfigError` listing
    everything that has no counterpart. ``Conversion.pipeline`` is ``train``, ``train_postprocessor``, or
    ``validate`` / ``predict`` (whose configs are ``train`` configs here: ``oml validate`` / ``oml predict`` read them).
    """
    conv = _Converter(data, source)
    conv.defaults(conv.data.pop("defaults", None))
    data = conv.data
    kind = _pipeline_of(data)
    config: dict[str, Any] = {"pipeline": "train_postprocessor" if kind == "train_postprocessor" else "train"}
    handled = {"defaults"}

    def take(key: str, convert: Callable[[Any, str], Any] | None = None, target: str | None = None) -> None:
        if key in data:
            handled.add(key)
            value = convert(data[key], f"$.{key}") if convert else data[key]
            if value is not None:
                _put(config, target or key, value)

    # ---- data
    root = data.get("dataset_root")
    handled |= {"dataset_root", "dataframe_name", "data_dir"}
    if kind == "predict":
        folder = data.get("data_dir", ".")
        _put(config, "data.dataframe", f"{str(folder).rstrip('/')}/df.csv")
        _put(config, "data.dataset_root", folder)
        conv.notes.append(
            f"$.data_dir: OML's predict embeds every image under {folder!r}; `oml predict` embeds the rows of a dataframe "
            f"in OML's format: list those images in {folder}/df.csv (or point data.dataframe at yours)"
        )
    elif root is None or "dataframe_name" not in data:
        conv.problems.append("$: OML's dataset_root and dataframe_name are both needed (where the dataframe is)")
    else:
        _put(config, "data.dataframe", f"{str(root).rstrip('/')}/{data['dataframe_name']}")
        _put(config, "data.dataset_root", root)
    for key in ("transforms_train", "transforms_val", "transforms_predict", "transforms_extraction"):
        if key in data:
            handled.add(key)
            transforms, size = conv.transforms(data[key], f"$.{key}")
            target = "data.transforms_train" if key == "transforms_train" else "data.transforms_val"
            _put(config, target, transforms)
            if size is not None and key != "transforms_train":
                _put(config, "data.im_size", size)
            elif size is not None:
                config.setdefault("data", {}).setdefault("im_size", size)

    # ---- components
    take("extractor", lambda v, w: conv.component("extractor", v, w))
    take("criterion", lambda v, w: conv.component("criterion", v, w))
    take("sampler", lambda v, w: conv.component("sampler", v, w))
    take("pairwise_model", lambda v, w: conv.component("pairwise_model", v, w))
    take("optimizer", conv.optimizer)
    take("scheduling", conv.scheduler, "scheduler")
    if "logger" in data:
        handled.add("logger")
        logger = conv.component("logger", data["logger"], "$.logger")
        if logger is not None:
            config["loggers"] = [{"type": "csv"}, logger]
    if kind in ("validate", "predict"):
        for key, placeholder in UNUSED_TRAINING.items():
            config.setdefault(key, copy.deepcopy(placeholder))
        conv.notes.append(
            f"$: an OML {kind} config: the criterion and sampler sections are placeholders (oml {kind} reads a train config "
            "and does not use them)"
        )
    if kind == "train_postprocessor":
        handled |= {"extractor_weights", "hard_pairs_mining", "freeze_n_epochs", "postprocessor"}
        config["miner"] = {"type": "pairs", "hard_mining": bool(data.get("hard_pairs_mining", True))}
        postprocessor = data.get("postprocessor") or {}
        top_n = (postprocessor.get("args") or {}).get("top_n") if isinstance(postprocessor, Mapping) else None
        if top_n is not None:
            config["top_n"] = top_n
        if "freeze_n_epochs" in data:
            conv.notes.append(
                f"$.freeze_n_epochs: dropped (OML trains the siamese head alone for {data['freeze_n_epochs']} epochs first); "
                "here the pairwise model trains as a whole from the start (train_backbone: false freezes its backbone)"
            )
        if "transforms_extraction" in data and "transforms_train" not in data:
            config["data"]["transforms_train"] = config["data"].get("transforms_val", [])

    # ---- top level and metrics
    accelerator = data.get("accelerator")
    handled.add("accelerator")
    if accelerator is not None:
        config["device"] = {"cpu": "cpu", "gpu": "cuda", "cuda": "cuda"}.get(str(accelerator), "auto")
    metric_args = data.get("metric_args") or {}
    handled.add("metric_args")
    for key, value in metric_args.items():
        if key in METRIC_ARGS:
            if kind == "train_postprocessor" and key in ("fmr_vals", "pcf_variance"):
                if value:
                    conv.notes.append(f"$.metric_args.{key}: dropped (re-ranking validation reports CMC, precision and mAP)")
                continue
            _put(config, f"validation.{key}", list(value))
        else:
            conv.notes.append(f"$.metric_args.{key}: dropped (it only shapes OML's logs)")
    for key, destination in TOP_LEVEL.items():
        if key not in data:
            continue
        handled.add(key)
        if destination is None:
            conv.notes.append(f"$.{key}: dropped (how OML's runner executes, not what is trained)")
        else:
            _put(config, destination, data[key])
    if kind != "train" and "max_epochs" not in data:
        config.pop("epochs", None)
    for key in data:
        if key not in handled and key not in conv.referenced:
            conv.problems.append(
                f"$.{key}: OML key with no counterpart here (remove it, or map it in oml_core.pipelines.convert)"
            )
    if conv.problems:
        raise ConfigError(conv.problems, source)
    return Conversion(config=config, pipeline=kind, notes=conv.notes)


__all__ = [
    "ARGUMENTS",
    "COMPONENTS",
    "Conversion",
    "METRIC_ARGS",
    "OML_DEFAULTS",
    "OPTIMIZER_DEFAULTS",
    "TOP_LEVEL",
    "convert_oml_config",
    "looks_like_oml_config",
]
