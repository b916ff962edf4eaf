"""Registers ``oml datasets fonts`` and ``oml datasets convert`` (entry point ``oml_datasets`` in group ``oml``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from oml_core import hookimpl

if TYPE_CHECKING:
    from oml_core.cli import CommandRegistry
    from oml_core.host import Host


def _configure_fonts(parser: argparse.ArgumentParser) -> None:
    from oml_datasets.fonts.builder import DEFAULT_CHARACTERS

    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write df.csv, images/ and fonts_manifest.json to")
    parser.add_argument(
        "--image-size", type=int, default=32, metavar="S", help="image side in pixels, a multiple of 16 (default 32)"
    )
    parser.add_argument(
        "--characters",
        default=DEFAULT_CHARACTERS,
        metavar="CHARS",
        help="the identities, one per character (default: the 52 Latin letters and 10 digits)",
    )
    parser.add_argument(
        "--faces-per-identity", type=int, default=300, metavar="N", help="at most N font faces per character (default 300)"
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.5,
        metavar="F",
        help="share of the characters held out for validation (default 0.5)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of the choice of faces (default 0)")
    parser.add_argument(
        "--font-dir",
        action="append",
        default=None,
        metavar="DIR",
        help="fonts folder (default: /usr/share/fonts, /usr/local/share/fonts, ~/.local/share/fonts, ~/.fonts)",
    )
    parser.add_argument("--force", action="store_true", help="build again in a folder that already holds a dataset")


def _fonts(args: argparse.Namespace, host: Host) -> int:
    from oml_datasets.fonts.builder import MANIFEST_NAME, FontsDatasetParams, build_fonts_dataset

    params = FontsDatasetParams(
        image_size=args.image_size,
        characters=args.characters,
        faces_per_identity=args.faces_per_identity,
        val_fraction=args.val_fraction,
        seed=args.seed,
    )
    report = build_fonts_dataset(args.out_dir, params, font_dirs=args.font_dir, force=args.force)
    left_out = ", ".join(f"{n} {reason}" for reason, n in report.left_out.items()) or "none"
    print(
        f"fonts dataset in {report.root}: {report.n_images} images of {params.image_size}x{params.image_size} from "
        f"{report.n_faces} font faces; {len(report.train_characters)} train characters, "
        f"{len(report.val_characters)} validation characters ({report.val_characters}); "
        f"faces left out: {left_out} (see {MANIFEST_NAME})"
    )
    return 0


def _configure_convert(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="cub, sop, inshop or cars")
    parser.add_argument("root", metavar="ROOT", help="the folder the dataset is unpacked in; df.csv is written there")
    parser.add_argument(
        "--split",
        choices=["standard", "oml"],
        default="standard",
        help="standard: the metric-learning split by identity; oml: OML 4.0's where it differs (CUB, Cars: by image; "
        "InShop: without single-image train items). Default standard",
    )
    parser.add_argument(
        "--no-check-images", action="store_true", help="write the dataframe without checking that every image exists"
    )


def _convert(args: argparse.Namespace, host: Host) -> int:
    from oml_datasets.converters import convert_dataset

    report = convert_dataset(args.name, args.root, split=args.split, check_files=not args.no_check_images)
    print(
        f"{args.name}: {report.n_images} images, {report.n_train_labels} train labels, {report.n_val_labels} validation "
        f"labels ({args.split} split); written: {', '.join(str(p) for p in report.written)}"
    )
    return 0


@hookimpl
def oml_register_cli_commands(commands: CommandRegistry) -> None:
    commands.add(
        "datasets fonts",
        help="render the installed fonts into a glyph-identity dataset in OML's format (identity = character)",
        configure=_configure_fonts,
        run=_fonts,
    )
    commands.add(
        "datasets convert",
        help="convert a public dataset (CUB-200-2011, Stanford Online Products, DeepFashion InShop, Stanford Cars) to OML format",
        configure=_configure_convert,
        run=_convert,
    )
