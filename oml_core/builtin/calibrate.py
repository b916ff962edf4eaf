"""Built-in plugin: ``oml calibrate --run RUN`` picks decision thresholds on the run's validation identities.

Writes ``RUN/calibration.json`` (thresholds at target FMRs with their FNMR, the best-F1 threshold, the default
``threshold`` = the best-F1 one) and ``RUN/calibration.png`` (FMR and FNMR against the threshold). ``oml serve``
answers same/not-same with that threshold.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oml_core._markers import hookimpl
from oml_core.errors import OMLError

if TYPE_CHECKING:
    from oml_core.cli import CommandRegistry
    from oml_core.host import Host

PLOT_FILE = "calibration.png"


def _configure(parser: argparse.ArgumentParser) -> None:
    # the defaults live with the calibration code, which imports torch: `oml --help` must not
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="a run directory written by oml train")
    parser.add_argument(
        "--fmr", type=float, nargs="+", default=None, metavar="F",
        help="target false match rates (default: 0.1 0.01 0.001, oml_core.retrieval.calibration.DEFAULT_FMR_VALS)",
    )
    parser.add_argument("--dataframe", default=None, help="dataframe with the validation rows (default: the run's own)")
    parser.add_argument("--dataset-root", default=None, help="folder of the dataframe's relative paths (default: the run's)")
    parser.add_argument(
        "--bins", type=int, default=None, help="thresholds of the FMR/FNMR curves (default: 4096, calibration.DEFAULT_BINS)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="items per batch when embedding (default 64)")
    parser.add_argument("--device", default=None, help="cpu, cuda... (default: CUDA when available)")


def _validation_dataset(host: Host, run: Any, dataframe: str | None, dataset_root: str | None) -> Any:
    from oml_core.builtin.model_options import create_modality
    from oml_core.data import DatasetQueryGallery, read_dataframe
    from oml_core.data.const import SPLIT_COLUMN, VALIDATION_SPLIT

    data = dict(run.config.get("data") or {})
    path = Path(dataframe) if dataframe is not None else Path(str(data.get("dataframe")))
    if not path.is_file():
        raise OMLError(
            f"oml calibrate: the run's dataframe {str(path)!r} is not there (relative paths are taken from the current "
            "folder, as in oml train); give it with --dataframe (and --dataset-root)"
        )
    df = read_dataframe(path)
    if SPLIT_COLUMN in df.columns:
        df = df[df[SPLIT_COLUMN] == VALIDATION_SPLIT].reset_index(drop=True)
    if not len(df):
        raise OMLError(f"oml calibrate: {str(path)!r} has no '{VALIDATION_SPLIT}' rows to calibrate on")
    root = dataset_root if dataset_root is not None else (data.get("dataset_root") if dataframe is None else None)
    modality = create_modality(host, run.modality)
    if modality is not None:  # a run on texts, audio...: its modality reads the rows, as in training
        return modality.query_gallery_dataset(df, root)
    return DatasetQueryGallery(df, dataset_root=root, transform=run.transform)


def calibrate_run(
    run_dir: str | Path,
    host: Host | None = None,
    *,
    fmr_vals: tuple[float, ...] | list[float] | None = None,
    dataframe: str | None = None,
    dataset_root: str | None = None,
    bins: int | None = None,
    batch_size: int = 64,
    device: str | None = None,
) -> dict[str, Any]:
    """Embed the run's validation split with its best weights, calibrate, write ``calibration.json`` and
    ``calibration.png`` into the run; returns the JSON content.

    Example:
        >>> calibrate_run("runs/mock-train-20240101-000000-000000")["threshold"]   # doctest: +SKIP
        0.83
    """
    import torch

    from oml_core.engine.validation import validation_columns
    from oml_core.files import atomic_write_text
    from oml_core.inference import inference
    from oml_core.retrieval.calibration import DEFAULT_BINS, DEFAULT_FMR_VALS, calibrate_thresholds, plot_calibration
    from oml_core.runs import CALIBRATION_FILE, load_run

    if host is None:
        from oml_core.host import Host

        host = Host()
    run = load_run(run_dir, host=host)
    dataset = _validation_dataset(host, run, dataframe, dataset_root)
    target = torch.device(device) if device else None
    embeddings = inference(run.extractor, dataset, batch_size=batch_size, device=target, progress=False)
    columns = validation_columns(dataset)
    is_query, is_gallery = columns["is_query"], columns["is_gallery"]
    if not bool(is_query.any()) or not bool(is_gallery.any()):
        raise OMLError("oml calibrate: the validation rows need both queries (is_query) and gallery items (is_gallery)")
    sequences = columns.get("sequence")
    seq = (lambda mask: [s for s, m in zip(sequences, mask.tolist()) if m]) if sequences is not None else None
    calibration = calibrate_thresholds(
        embeddings[is_query],
        embeddings[is_gallery],
        columns["labels"][is_query],
        columns["labels"][is_gallery],
        tuple(fmr_vals) if fmr_vals is not None else DEFAULT_FMR_VALS,
        metric=run.distance,
        bins=bins if bins is not None else DEFAULT_BINS,
        query_ids=columns["idx"][is_query],
        gallery_ids=columns["idx"][is_gallery],
        query_sequences=seq(is_query) if seq else None,
        gallery_sequences=seq(is_gallery) if seq else None,
    )
    content = calibration.as_json()
    atomic_write_text(Path(run_dir) / CALIBRATION_FILE, json.dumps(content, indent=2))
    plot_calibration(calibration, str(Path(run_dir) / PLOT_FILE))
    return content


def _calibrate(args: argparse.Namespace, host: Host) -> int:
    content = calibrate_run(
        args.run, host, fmr_vals=args.fmr, dataframe=args.dataframe, dataset_root=args.dataset_root, bins=args.bins,
        batch_size=args.batch_size, device=args.device,
    )
    print(f"oml calibrate: {content['n_positive_pairs']} positive / {content['n_negative_pairs']} negative pairs "
          f"({content['distance']} distance; 'same' when distance < threshold)")
    print(f"  {'FMR':>8}  {'threshold':>10}  {'FNMR':>8}")
    for entry in content["thresholds"]:
        print(f"  {entry['fmr']:>8g}  {entry['threshold']:>10.4f}  {entry['fnmr']:>8.4f}")
    best = content["best_f1"]
    print(f"  best F1 {best['f1']:.4f} at threshold {best['threshold']:.4f} (FMR {best['fmr']:.4f}, FNMR {best['fnmr']:.4f})")
    print(f"oml calibrate: wrote {Path(args.run) / 'calibration.json'} and {Path(args.run) / PLOT_FILE}")
    return 0


@hookimpl
def oml_register_cli_commands(commands: CommandRegistry) -> None:
    commands.add(
        "calibrate",
        help="choose same/not-same distance thresholds (target FMRs, best F1) on a run's validation identities",
        configure=_configure,
        run=_calibrate,
    )
