"""Built-in plugin: the ``oml report RUN_DIR`` command (one self-contained HTML page about a run)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from oml_core._markers import hookimpl

if TYPE_CHECKING:
    from oml_core.cli import CommandRegistry
    from oml_core.host import Host


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of oml train")
    parser.add_argument("--out", default=None, help="HTML file to write (default: RUN_DIR/report.html)")
    parser.add_argument("--top-k", type=int, default=5, help="results shown per worst query (default 5)")
    parser.add_argument("--worst", type=int, default=8, help="how many worst queries to show (default 8)")


def _run(args: argparse.Namespace, host: Host) -> int:
    from oml_core.report import write_report

    path = write_report(args.run_dir, args.out, top_k=args.top_k, n_worst=args.worst)
    print(f"oml: report written to {path}")
    return 0


@hookimpl
def oml_register_cli_commands(commands: CommandRegistry) -> None:
    commands.add(
        "report",
        help="write one self-contained HTML report of a run (metrics, CMC, FNMR/FMR, distances, projection, worst queries)",
        configure=_configure,
        run=_run,
    )
