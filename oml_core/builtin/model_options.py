"""The model options shared by ``oml embed``, ``oml index`` and ``oml search`` (one flag name per concept), and
how they become an extractor, its preprocessing and its fingerprint.

``--run RUN_DIR`` takes everything from a trained run (``oml_core.runs.load_run``). Otherwise ``--extractor``
names a registered extractor or a weights name of the zoo, ``--weights`` a checkpoint path (or weights name),
``--arch`` the architecture, ``--im-size`` the square input size and ``--set extractor.KEY=VALUE`` any other option.
``--modality text|audio`` (``oml index`` / ``oml search``; options with ``--set modality.KEY=VALUE``) says that the
rows are not images; a run takes it from its ``data.modality``. Randomly initialised models are seeded, so a re-run
embeds with the same weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from oml_core.errors import OMLError
from oml_core.registry import ExtractorChoice, ModalityChoice

if TYPE_CHECKING:
    import torch

    from oml_core.fingerprint import ModelFingerprint
    from oml_core.host import Host
    from oml_core.runs import RunArtifacts

_MODEL_FLAGS = ("extractor", "weights", "arch", "im_size", "modality")


@attrs.frozen(kw_only=True)
class ModelSpec:
    """How to rebuild a model from the command line's options; saved in a store's ``info`` for ``oml search``."""

    extractor: ExtractorChoice
    im_size: int = 224
    modality: ModalityChoice | None = None


@attrs.frozen(kw_only=True)
class LoadedModel:
    """An extractor ready to embed, with its preprocessing, fingerprint and the record that rebuilds it.
    ``modality`` (a ``protocols.Modality``) builds its datasets when the rows are texts, audio... (None: images)."""

    extractor: torch.nn.Module
    transform: Any
    fingerprint: ModelFingerprint
    record: dict[str, Any]
    run: RunArtifacts | None = None
    modality: Any = None

    @property
    def dim(self) -> int:
        return self.fingerprint.embedding_size


def add_model_arguments(parser: argparse.ArgumentParser, *, recorded_default: bool = False) -> None:
    """``--run``, ``--extractor``, ``--weights``, ``--arch``, ``--im-size``, ``--set``, ``--batch-size``,
    ``--num-workers``, ``--device``, ``--no-progress``."""
    default = " (default: the model recorded in the store)" if recorded_default else ""
    # --run-dir: the same option for command lines that torchrun parses first (it reads --run as its --run-path)
    parser.add_argument("--run", "--run-dir", dest="run", default=None, metavar="RUN_DIR",
                        help=f"a run directory of `oml train`: its extractor, best weights, preprocessing and threshold{default}")
    parser.add_argument("--extractor", default=None, help=f"registered extractor (see `oml plugins`) or weights name{default}")
    # the name `oml index` used before the flags were unified; kept working, not advertised
    parser.add_argument("--model", dest="extractor_alias", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--weights", default=None, help="checkpoint path or weights name for the extractor")
    parser.add_argument("--arch", default=None, help="architecture of the extractor, e.g. resnet18 or vits16")
    parser.add_argument("--im-size", type=int, default=None, help="images are resized to this square size (default 224)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any other option, e.g. --set extractor.gem_p=3.0"
    )
    add_loader_arguments(parser)


def add_modality_argument(parser: argparse.ArgumentParser) -> None:
    """``--modality``: the rows and queries are texts, audio... (a registered modality) instead of images."""
    parser.add_argument(
        "--modality", default=None, help="rows and queries are not images: text (oml-text), audio (oml-audio); options "
        "with --set modality.KEY=VALUE, e.g. --set modality.tokenizer=DIR (a run takes it from its data.modality)"
    )


def add_loader_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=None, help="images per batch (default 32)")
    parser.add_argument("--num-workers", type=int, default=None, help="image-reading worker processes (default 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: CUDA when available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def model_flags_given(args: argparse.Namespace) -> bool:
    _take_alias(args)
    return any(getattr(args, name, None) is not None for name in _MODEL_FLAGS) or bool(getattr(args, "set", []))


def _take_alias(args: argparse.Namespace) -> None:
    alias = getattr(args, "extractor_alias", None)
    if alias is not None:
        if args.extractor is not None and args.extractor != alias:
            raise OMLError(
                f"--model {alias!r} and --extractor {args.extractor!r} name two models; --model is the old name of --extractor"
            )
        args.extractor = alias
        args.extractor_alias = None


def load_model(
    args: argparse.Namespace, host: Host, *, recorded: Mapping[str, Any] | None = None, distance: str | None = None
) -> LoadedModel:
    """The model of ``--run`` or of the model flags, else the one ``recorded`` in a store. ``distance`` is the
    store's metric (recorded in the fingerprint; a run must have validated with the same one)."""
    from oml_core.runs import load_run

    flags = model_flags_given(args)
    if args.run is not None:
        if flags:
            given = [f"--{n.replace('_', '-')}" for n in _MODEL_FLAGS if getattr(args, n, None) is not None]
            raise OMLError(f"--run takes the model from the run; leave out {', '.join(given) or '--set'}")
        run = load_run(args.run, host=host)
        if distance is not None and distance != run.distance:
            raise OMLError(
                f"the run {args.run} uses the {run.distance} distance (validation and calibration), but the store uses "
                f"{distance}; use a store of the run's distance (e.g. a new one: oml index --run takes it from the run)"
            )
        record = {"fingerprint": run.fingerprint.to_dict(), "run": str(run.run_dir), "checkpoint": str(run.checkpoint)}
        return LoadedModel(extractor=run.extractor, transform=run.transform, fingerprint=run.fingerprint, record=record,
                           run=run, modality=create_modality(host, run.modality))
    if not flags and recorded is not None:
        return _recorded_model(host, recorded, distance)
    spec_data = model_spec_data(args, host)
    extractor, transform, spec = build_model(host, spec_data)
    fingerprint = _spec_fingerprint(host, extractor, transform, spec, distance)
    record = {"fingerprint": fingerprint.to_dict(), "spec": spec_data}
    return LoadedModel(extractor=extractor, transform=transform, fingerprint=fingerprint, record=record,
                       modality=create_modality(host, spec.modality))


def create_modality(host: Host, choice: ModalityChoice | None) -> Any:
    """The modality component of ``choice`` (None for images)."""
    return host.registries.modalities.create(choice) if choice is not None else None


def _spec_fingerprint(
    host: Host, extractor: torch.nn.Module, transform: Any, spec: ModelSpec, distance: str | None
) -> ModelFingerprint:
    from oml_core.fingerprint import fingerprint_model_identity

    choice = host.registries.converter.unstructure(spec.extractor)
    modality = host.registries.converter.unstructure(spec.modality) if spec.modality is not None else None
    return fingerprint_model_identity(
        extractor, extractor_config=choice, transform=transform, distance=distance, modality=modality
    )


def _recorded_model(host: Host, recorded: Mapping[str, Any], distance: str | None) -> LoadedModel:
    """Rebuild the model a store recorded: from its run when that still exists, else from its spec."""
    from oml_core.fingerprint import ModelFingerprint
    from oml_core.runs import load_run

    fingerprint = ModelFingerprint.from_dict(recorded["fingerprint"]) if "fingerprint" in recorded else None
    run_dir = recorded.get("run")
    if run_dir is not None:
        if not Path(run_dir).is_dir():
            raise OMLError(
                f"the store was filled by the model of run {run_dir}, which no longer exists there; pass --run with that "
                f"run's new location (a moved run is fine: the store checks the weights' sha256, not the path)"
            )
        run = load_run(run_dir, host=host)
        return LoadedModel(
            extractor=run.extractor, transform=run.transform, fingerprint=run.fingerprint, record=dict(recorded), run=run,
            modality=create_modality(host, run.modality),
        )
    spec_data = json.loads(json.dumps(dict(recorded.get("spec", recorded))))
    spec_data.pop("fingerprint", None)
    weights = spec_data.get("extractor", {}).get("weights")
    if isinstance(weights, str) and ("/" in weights or weights.endswith((".pt", ".pth", ".ckpt", ".safetensors"))):
        if not Path(weights).exists():
            raise OMLError(
                f"the store was filled with the weights {weights}, which are no longer there; pass --weights with their new "
                f"location (plus --extractor/--arch as when indexing): the store checks the weights' sha256, not the path"
            )
    extractor, transform, spec = build_model(host, spec_data)
    if fingerprint is None:  # a store of an OML before model identity: its spec is all there is
        fingerprint = _spec_fingerprint(host, extractor, transform, spec, distance)
    return LoadedModel(extractor=extractor, transform=transform, fingerprint=fingerprint, record=dict(recorded),
                       modality=create_modality(host, spec.modality))


def model_spec_data(args: argparse.Namespace, host: Host) -> dict[str, Any]:
    """The model spec (``{"extractor": {"type": ..., ...}, "im_size": ..., "modality": ...}``) from the command line."""
    from oml_core.config import apply_overrides

    _take_alias(args)
    extractor: dict[str, Any] = {}
    for name in (args.extractor, args.weights):
        if name is not None and name in host.weights:
            entry = host.weights.get(name)
            extractor.update({"type": entry.extractor, "arch": entry.arch, "weights": name})
    if args.extractor is not None and args.extractor not in host.weights:
        extractor["type"] = args.extractor
    if args.weights is not None and args.weights not in host.weights:
        extractor["weights"] = str(Path(args.weights).resolve()) if Path(args.weights).exists() else args.weights
    if "type" not in extractor:
        if args.weights is not None:
            raise OMLError(f"--weights {args.weights!r} is not a weights name; also name the extractor with --extractor")
        raise OMLError(
            "name the model: --run RUN_DIR (a run of `oml train`), or --extractor <extractor or weights name> "
            "(see `oml plugins`), e.g. --extractor resnet --arch resnet18"
        )
    data: dict[str, Any] = {"extractor": extractor}
    if args.arch is not None:
        data["extractor"]["arch"] = args.arch
    if args.im_size is not None:
        data["im_size"] = args.im_size
    if getattr(args, "modality", None) is not None:
        data["modality"] = {"type": args.modality}
    return apply_overrides(data, list(args.set))


def build_model(host: Host, data: Mapping[str, Any]) -> tuple[torch.nn.Module, Any, ModelSpec]:
    """The extractor and its inference transform from a model spec; seeded, so random initialisation repeats."""
    import torch

    from oml_core.data.transforms import get_normalisation_resize_torch

    spec = host.registries.structure(dict(data), ModelSpec, path="$.model")
    torch.manual_seed(0)
    extractor = host.registries.extractors.create(spec.extractor)
    extractor.eval()
    weights = getattr(spec.extractor.config, "weights", None)
    transform = get_normalisation_resize_torch(spec.im_size)
    if isinstance(weights, str) and weights in host.weights and host.weights.get(weights).transforms and "im_size" not in data:
        from oml_core.weights import get_transforms_for_pretrained

        transform = get_transforms_for_pretrained(weights, host=host)[0]
    return extractor, transform, spec


def check_model(recorded: Mapping[str, Any] | None, given: LoadedModel, *, store: str, what: str) -> None:
    """Refuse ``given`` when the store recorded another model (one paragraph naming both)."""
    from oml_core.fingerprint import ModelFingerprint

    if recorded is None or "fingerprint" not in recorded:
        if recorded is not None:
            print(f"oml: warning: the store {store} was filled by an OML without model identity; it cannot check the model",
                  file=sys.stderr)
        return
    ModelFingerprint.from_dict(recorded["fingerprint"]).check_same(given.fingerprint, store=store, given=what)


def describe_given(args: argparse.Namespace) -> str:
    """How the user named the model, for messages."""
    if args.run is not None:
        return f"the run {args.run}"
    parts = [f"--{n.replace('_', '-')} {getattr(args, n)}" for n in _MODEL_FLAGS if getattr(args, n, None) is not None]
    return "the model " + " ".join(parts) if parts else "the recorded model"
