"""Built-in experiment loggers: CSV (one row per value, flushed at once) and TensorBoard event files.

The TensorBoard logger writes the event-file format itself (records of length, masked CRC-32C and an ``Event``
protobuf), so it needs neither ``tensorboard`` nor TensorFlow to write; ``tensorboard --logdir runs`` reads it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import attrs

from oml_core.files import atomic_write_text


# ---------------------------------------------------------------------------------------------------- CSV
@attrs.frozen(kw_only=True)
class CSVLoggerConfig:
    filename: str = "metrics.csv"
    """The file under the run directory."""
    log_figures: bool = True
    """Save the worst queries of each validation as PNG under ``<run_dir>/figures`` (false: no figure is drawn
    for this logger)."""


class CSVLogger:
    """Appends ``step,name,value`` rows to ``<run_dir>/metrics.csv`` (long format: new metric names never break
    the file) and saves figures as PNG under ``<run_dir>/figures``. Every row is flushed, so a killed run loses
    nothing it logged.

    Example:
        >>> logger = CSVLogger(run_dir="/tmp/oml-doc-run")
        >>> logger.log_metrics({"train/loss": 0.5}, step=1); logger.close()
    """

    def __init__(self, filename: str = "metrics.csv", log_figures: bool = True, *, run_dir: str | Path) -> None:
        self.log_figures = log_figures
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / filename
        is_new = not self.path.exists() or self.path.stat().st_size == 0
        self._file: IO[str] | None = self.path.open("a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        if is_new:
            self._writer.writerow(["step", "name", "value"])
            self._file.flush()

    def log_hparams(self, params: Mapping[str, Any]) -> None:
        atomic_write_text(self.run_dir / "hparams.json", json.dumps(params, indent=2, default=str))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if self._file is None:
            return
        for name, value in metrics.items():
            self._writer.writerow([step, name, repr(float(value))])
        self._file.flush()

    def state_dict(self) -> dict[str, Any]:
        """Where the file ends now (checkpoints keep it, so that a resumed run logs no row twice)."""
        return {"bytes": self._file.tell() if self._file is not None else self.path.stat().st_size}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Drop the rows logged after the checkpoint being resumed."""
        _truncate_and_reopen(self, self.path, int(state["bytes"]), "a")
        self._writer = csv.writer(self._file)  # type: ignore[arg-type]

    def log_figure(self, name: str, figure: Any, step: int) -> None:
        folder = self.run_dir / "figures"
        folder.mkdir(exist_ok=True)
        figure.savefig(folder / f"{name.replace('/', '_')}_step{step}.png", dpi=80)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _truncate_and_reopen(logger: Any, path: Path, size: int, mode: str) -> None:
    if logger._file is not None:
        logger._file.close()
    if path.is_file() and path.stat().st_size > size:
        with path.open("r+b") as handle:
            handle.truncate(size)
    logger._file = path.open(mode, newline="", encoding="utf-8") if "b" not in mode else path.open(mode)


# ---------------------------------------------------------------------------------------------------- TensorBoard
def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord files use.

    Example:
        >>> hex(crc32c(b"123456789"))
        '0xe3069283'
    """
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    return _varint((number << 3) | wire_type) + payload


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _field(number, 2, _varint(len(payload)) + payload)


def encode_event(*, wall_time: float, step: int = 0, file_version: str | None = None, summary_values: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    """An ``Event`` protobuf: wall_time (1, double), step (2, int64), file_version (3) or summary (5)."""
    event = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
    if file_version is not None:
        event += _length_delimited(3, file_version.encode())
    if summary_values:
        event += _length_delimited(5, b"".join(_length_delimited(1, value) for value in summary_values))
    return event


def scalar_value(tag: str, value: float) -> bytes:
    """A ``Summary.Value`` with tag (1) and simple_value (2, float)."""
    return _length_delimited(1, tag.encode()) + _field(2, 5, struct.pack("<f", value))


def image_value(tag: str, png: bytes, height: int, width: int) -> bytes:
    """A ``Summary.Value`` with tag (1) and image (4: height 1, width 2, colorspace 3, encoded_image_string 4)."""
    image = _field(1, 0, _varint(height)) + _field(2, 0, _varint(width)) + _field(3, 0, _varint(4)) + _length_delimited(4, png)
    return _length_delimited(1, tag.encode()) + _length_delimited(4, image)


def frame_record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", _masked_crc(header)) + data + struct.pack("<I", _masked_crc(data))


def read_records(path: str | Path) -> list[bytes]:
    """Read back the records of an event file, checking both CRCs (used by tests and ``oml`` tooling)."""
    blob, records, offset = Path(path).read_bytes(), [], 0
    while offset < len(blob):
        header = blob[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", blob[offset + 8 : offset + 12])
        if header_crc != _masked_crc(header):
            raise ValueError(f"{path}: corrupt record header at byte {offset}")
        data = blob[offset + 12 : offset + 12 + length]
        (data_crc,) = struct.unpack("<I", blob[offset + 12 + length : offset + 16 + length])
        if data_crc != _masked_crc(data):
            raise ValueError(f"{path}: corrupt record data at byte {offset}")
        records.append(data)
        offset += 16 + length
    return records


@attrs.frozen(kw_only=True)
class TensorBoardLoggerConfig:
    subdir: str = "tensorboard"
    """The folder of the event files under the run directory."""
    log_figures: bool = True
    """Write the worst queries of each validation as images (false: no figure is drawn for this logger)."""


class TensorBoardLogger:
    """Writes scalars and figures to ``<run_dir>/tensorboard/events.out.tfevents.*`` (flushed after each call)."""

    def __init__(self, subdir: str = "tensorboard", log_figures: bool = True, *, run_dir: str | Path) -> None:
        self.log_figures = log_figures
        folder = Path(run_dir) / subdir
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
        self._file: IO[bytes] | None = self.path.open("ab")
        self._write(encode_event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: bytes) -> None:
        if self._file is not None:
            self._file.write(frame_record(event))
            self._file.flush()

    def log_hparams(self, params: Mapping[str, Any]) -> None:
        text = json.dumps(params, indent=2, default=str)
        atomic_write_text(self.path.parent / "hparams.json", text)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        values = [scalar_value(name, float(value)) for name, value in metrics.items() if not math.isnan(float(value))]
        if values:
            self._write(encode_event(wall_time=time.time(), step=step, summary_values=values))

    def state_dict(self) -> dict[str, Any]:
        """This event file and where it ends now (a resumed run appends to it, after cutting what came later)."""
        return {"file": self.path.name, "bytes": self._file.tell() if self._file is not None else self.path.stat().st_size}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        previous = self.path.parent / str(state["file"])
        if not previous.is_file() or previous == self.path:
            return
        if self._file is not None:
            self._file.close()
        self.path.unlink(missing_ok=True)  # the new, nearly empty file: the run goes on in its first one
        self.path = previous
        _truncate_and_reopen(self, previous, int(state["bytes"]), "ab")

    def log_figure(self, name: str, figure: Any, step: int) -> None:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        png = buffer.getvalue()
        width, height = struct.unpack(">II", png[16:24])  # the PNG IHDR chunk: the size actually written
        self._write(encode_event(wall_time=time.time(), step=step, summary_values=[image_value(name, png, height, width)]))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
