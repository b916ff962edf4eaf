"""Built-in plugin: the ``oml plugins`` and ``oml config check`` commands (``check`` knows every pipeline's config and
``oml embed``'s)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

import attrs

from oml_core._markers import hookimpl

if TYPE_CHECKING:
    from oml_core.cli import CommandRegistry
    from oml_core.host import Host


def _plugins(args: argparse.Namespace, host: Host) -> int:
    infos = host.plugins
    if args.json:
        print(json.dumps([attrs.asdict(info) for info in infos], indent=2))
        return 0
    for info in infos:
        where = f"{info.distribution} {info.version}" if info.distribution else info.source
        print(f"{info.name} ({where}) [{info.status}]")
        if info.error:
            print(f"    error: {info.error}")
        for kind, names in info.components.items():
            print(f"    {kind}: {', '.join(names)}")
        if info.hooks:
            print(f"    hooks: {', '.join(info.hooks)}")
    return 0


def _config_check(args: argparse.Namespace, host: Host) -> int:
    from oml_core.config import load_yaml
    from oml_core.pipelines import load_pipeline_config

    data = load_yaml(args.file)
    if (args.pipeline or (data.get("pipeline") if isinstance(data, dict) else None)) == "embed":
        return _check_embed_config(args, host, data)
    cfg = load_pipeline_config(host, args.file, pipeline=args.pipeline, overrides=args.set)
    if getattr(getattr(cfg, "data", None), "dataframe", None) is not None:
        from oml_core.pipelines.preflight import check_data, check_dataframe_exists

        if args.data:
            check_data(cfg, host, images=True)
        else:
            check_dataframe_exists(cfg.data)
    print(f"{args.file}: OK ({type(cfg).__name__})")
    return 0


def _check_embed_config(args: argparse.Namespace, host: Host, data: dict[str, Any]) -> int:
    """``oml embed``'s config (not a pipeline): its schema, its dataframe and, with ``--data``, every file it names."""
    from pathlib import Path

    from oml_core.builtin.models import EmbedConfig
    from oml_core.config import apply_overrides
    from oml_core.data import read_dataframe
    from oml_core.data.dataframe import path_problems
    from oml_core.errors import OMLError

    cfg = host.registries.structure(apply_overrides(dict(data), list(args.set)), EmbedConfig, source=args.file)
    path = Path(cfg.dataframe)
    if not path.is_file():
        raise OMLError(
            f"{args.file}: $.dataframe: {path} does not exist (relative paths are read from the working directory, "
            f"{Path.cwd()}); give the CSV or parquet file whose images oml embed should embed"
        )
    if args.data:
        problems = path_problems(read_dataframe(path), cfg.images_root, check_files=True)
        if problems:
            listed = "\n  ".join(map(str, problems))
            raise OMLError(f"{args.file}: the dataframe {path} has {len(problems)} problem(s):\n  {listed}")
    print(f"{args.file}: OK ({type(cfg).__name__})")
    return 0


def _config_convert(args: argparse.Namespace, host: Host) -> int:
    import sys

    import yaml

    from oml_core.config import load_yaml
    from oml_core.errors import ConfigError
    from oml_core.pipelines.convert import convert_oml_config, looks_like_oml_config

    data = load_yaml(args.file)
    if not looks_like_oml_config(data):
        raise ConfigError(["$: this is not an OML 4 pipeline config (it has a 'pipeline' key or no OML keys)"], args.file)
    conversion = convert_oml_config(data, source=args.file)
    pipeline = conversion.config["pipeline"]
    if pipeline not in host.pipelines:
        raise ConfigError(
            [f"$.pipeline: {pipeline!r} is not installed here (oml-siamese provides train_postprocessor)"], args.file
        )
    # the result is checked like any config file: a problem is reported now, not at the start of a run
    host.registries.structure(conversion.config, host.pipelines.get(pipeline).config, source=f"{args.file} (converted)")
    header = f"# converted from OML 4's {args.file} ({conversion.pipeline} config) by `oml config convert`\n"
    header += "".join(f"# note: {note}\n" for note in conversion.notes)
    text = header + yaml.safe_dump(conversion.config, sort_keys=False)
    if args.output:
        from pathlib import Path

        Path(args.output).write_text(text, encoding="utf-8")
        print(f"{args.output}: written ({pipeline} config, {len(conversion.notes)} notes)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _configure_config_convert(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="an OML 4 pipeline config (Hydra style: name/args)")
    parser.add_argument("-o", "--output", default=None, help="write the converted YAML here (default: print it)")


def _configure_plugins(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (plugin, distribution, version, hooks, components)")


def _configure_config_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="YAML config file")
    parser.add_argument("--pipeline", default=None, help="which pipeline's schema (default: the file's 'pipeline' key, or train)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a value, e.g. --set epochs=3")
    parser.add_argument("--data", action="store_true", help="also open the dataframe and every image it names")


@hookimpl
def oml_register_cli_commands(commands: CommandRegistry) -> None:
    commands.add("plugins", help="list plugins, their status, hooks and components", configure=_configure_plugins, run=_plugins)
    commands.add(
        "config check",
        help="validate a config file and report every problem",
        configure=_configure_config_check,
        run=_config_check,
    )
    commands.add(
        "config convert",
        help="convert an OML 4 pipeline config (name/args) to this project's format",
        configure=_configure_config_convert,
        run=_config_convert,
    )
    from oml_core.builtin.zoo_commands import add_zoo_commands

    add_zoo_commands(commands)
