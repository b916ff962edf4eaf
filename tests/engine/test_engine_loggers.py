"""Built-in loggers: CSV rows survive a crash; TensorBoard files have valid records that decode to what was logged."""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import pytest

from oml_core import Host
from oml_core.engine.loggers import CSVLogger, TensorBoardLogger, crc32c, read_records


def _decode_fields(data: bytes) -> list[tuple[int, int, object]]:
    """A minimal protobuf decoder (field number, wire type, value) for checking what the logger wrote."""
    fields, i = [], 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 1:
            value, i = struct.unpack("<d", data[i : i + 8])[0], i + 8
        elif wire == 5:
            value, i = struct.unpack("<f", data[i : i + 4])[0], i + 4
        else:
            length, i = _read_varint(data, i)
            value, i = data[i : i + length], i + length
        fields.append((number, wire, value))
    return fields


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[i]
        result |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            return result, i
        shift += 7


def test_crc32c_known_vectors() -> None:
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 test vector: 32 bytes of zeros


def test_tensorboard_records_decode_to_the_logged_scalars(tmp_path: Path) -> None:
    logger = TensorBoardLogger(run_dir=tmp_path)
    logger.log_metrics({"train/loss": 0.5, "val/OVERALL/cmc/1": 0.75}, step=3)
    logger.log_metrics({"train/loss": float("nan")}, step=4)  # NaN is skipped, not written
    logger.close()
    records = read_records(logger.path)
    assert len(records) == 2
    header = dict((n, v) for n, _, v in _decode_fields(records[0]))
    assert header[3] == b"brain.Event:2"
    event = _decode_fields(records[1])
    assert (2, 0, 3) in event  # step
    summary = next(v for n, _, v in event if n == 5)
    values = {}
    for _, _, value in _decode_fields(summary):
        parts = dict((n, v) for n, _, v in _decode_fields(value))
        values[parts[1].decode()] = parts[2]
    assert values == {"train/loss": 0.5, "val/OVERALL/cmc/1": 0.75}


def test_tensorboard_reader_detects_corruption(tmp_path: Path) -> None:
    logger = TensorBoardLogger(run_dir=tmp_path)
    logger.log_metrics({"x": 1.0}, step=1)
    logger.close()
    blob = bytearray(logger.path.read_bytes())
    blob[-6] ^= 0xFF
    logger.path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="corrupt record data"):
        read_records(logger.path)


def test_csv_logger_flushes_every_row_and_appends_on_resume(tmp_path: Path) -> None:
    logger = CSVLogger(run_dir=tmp_path)
    logger.log_metrics({"train/loss": 0.25}, step=1)
    rows = list(csv.reader((tmp_path / "metrics.csv").open()))  # read while still open: nothing is buffered
    assert rows == [["step", "name", "value"], ["1", "train/loss", "0.25"]]
    logger.close()
    again = CSVLogger(run_dir=tmp_path)
    again.log_metrics({"train/loss": 0.125}, step=2)
    again.close()
    rows = list(csv.reader((tmp_path / "metrics.csv").open()))
    assert rows[-1] == ["2", "train/loss", "0.125"] and rows.count(["step", "name", "value"]) == 1


def test_loggers_are_registered_components(tmp_path: Path) -> None:
    host = Host(entry_points=False, env={})
    assert set(host.registries.loggers.names()) >= {"csv", "tensorboard"}
    logger = host.registries.loggers.create("csv", {"filename": "m.csv"}, run_dir=tmp_path)
    logger.close()
    assert (tmp_path / "m.csv").is_file()


def test_figures_are_saved(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(1, 1))
    csv_logger, tb_logger = CSVLogger(run_dir=tmp_path), TensorBoardLogger(run_dir=tmp_path)
    csv_logger.log_figure("worst/queries", figure, step=7)
    tb_logger.log_figure("worst/queries", figure, step=7)
    tb_logger.close()
    assert (tmp_path / "figures" / "worst_queries_step7.png").stat().st_size > 0
    image_event = _decode_fields(read_records(tb_logger.path)[1])
    value = _decode_fields(next(v for n, _, v in image_event if n == 5))[0][2]
    image = dict((n, v) for n, _, v in _decode_fields(dict((n, v) for n, _, v in _decode_fields(value))[4]))
    assert image[4][:8] == b"\x89PNG\r\n\x1a\n" and (image[1], image[2]) == (80, 80)


def test_a_resumed_tensorboard_logger_cuts_what_was_logged_after_the_checkpoint(tmp_path) -> None:
    first = TensorBoardLogger(run_dir=tmp_path)
    first.log_metrics({"train/loss": 1.0}, step=1)
    saved = first.state_dict()  # what a checkpoint at step 1 records
    first.log_metrics({"train/loss": 0.5}, step=2)  # logged after the checkpoint, then the process was killed
    first.close()
    import time

    time.sleep(1.1)  # the resumed logger's own file would get another name
    resumed = TensorBoardLogger(run_dir=tmp_path)
    resumed.load_state_dict(saved)
    resumed.log_metrics({"train/loss": 0.6}, step=2)
    resumed.close()
    files = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert files == [first.path]
    records = read_records(first.path)
    assert len(records) == 3  # the file version, step 1, and step 2 once (the value of the resumed run)
    assert records[-1].endswith(struct.pack("<f", 0.6)) and records[1].endswith(struct.pack("<f", 1.0))
