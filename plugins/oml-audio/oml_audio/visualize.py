"""Spectrogram pictures of audio items (matplotlib), so retrieval results of audio are drawn like those of images,
and an HTML block with the picture and a player."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
import torch
from torch import Tensor

from oml_audio.ecapa import mel_filterbank

SIZE_INCHES = 2.56


def default_spec_repr_func(audio: Tensor, sample_rate: int = 16_000) -> Tensor:
    """``log(1 + mel power spectrogram)`` ``(128, frames)`` of a mono or multi-channel waveform (channels averaged):
    n_fft 2048, hop 512, Hann window, HTK mel filters up to half the sample rate.

    Example:
        >>> default_spec_repr_func(torch.zeros(1, 16000)).shape
        torch.Size([128, 32])
    """
    waveform = audio.float().reshape(-1, audio.shape[-1]).mean(dim=0)
    n_fft = 2048
    if waveform.shape[-1] < n_fft // 2 + 1:  # reflect padding needs more samples than half a window
        waveform = torch.nn.functional.pad(waveform, (0, n_fft // 2 + 1 - waveform.shape[-1]))
    spec = torch.stft(waveform, n_fft=n_fft, hop_length=512, window=torch.hann_window(n_fft), center=True,
                      pad_mode="reflect", return_complex=True).abs().pow(2)  # fmt: skip
    fb = mel_filterbank(n_fft // 2 + 1, 0.0, sample_rate / 2, 128, sample_rate)
    return torch.log1p(fb.T @ spec)


def _figure_png(spec_repr: Tensor, color: tuple[int, int, int], draw_bbox: bool) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(SIZE_INCHES, SIZE_INCHES), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(np.asarray(spec_repr.detach().cpu()), aspect="auto", origin="lower", cmap="magma")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(draw_bbox)
        spine.set_linewidth(10)
        spine.set_edgecolor([c / 255 for c in color])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def visualize_audio(spec_repr: Tensor, color: tuple[int, int, int] = (0, 0, 0), draw_bbox: bool = True) -> np.ndarray:
    """The spectral representation drawn as a 256x256 picture framed in ``color``, an ``(H, W, 3)`` uint8 array.

    Example:
        >>> visualize_audio(torch.rand(128, 40), color=(0, 255, 0)).shape
        (256, 256, 3)
    """
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(_figure_png(spec_repr, color, draw_bbox))).convert("RGB")).copy()


def visualize_audio_with_player(
    audio: Tensor,
    spec_repr: Tensor,
    sample_rate: int,
    title: str = "",
    color: tuple[int, int, int] = (0, 0, 0),
    draw_bbox: bool = True,
) -> str:
    """An HTML block: ``title``, the spectrogram picture and an ``<audio>`` player with the clip as WAV (inline).

    Example:
        >>> "<audio" in visualize_audio_with_player(torch.zeros(1, 800), torch.rand(8, 4), 16000, title="q")
        True
    """
    import soundfile

    picture = base64.b64encode(_figure_png(spec_repr, color, draw_bbox)).decode("ascii")
    wav = io.BytesIO()
    soundfile.write(wav, np.asarray(audio.detach().cpu().float()).reshape(-1, audio.shape[-1]).T, sample_rate, format="WAV")
    sound = base64.b64encode(wav.getvalue()).decode("ascii")
    return (
        f"<div style='display:inline-block;margin:4px;text-align:center'><div>{html.escape(title)}</div>"
        f"<img src='data:image/png;base64,{picture}' width='256' height='256'/><br/>"
        f"<audio controls src='data:audio/wav;base64,{sound}'></audio></div>"
    )


def html_grid(blocks: list[list[str]]) -> str:
    """Rows of HTML blocks, one row per query (``RetrievalResults``-style)."""
    rows: list[Any] = ["<div style='display:flex'>" + "".join(row) + "</div>" for row in blocks]
    return "<div>" + "".join(rows) + "</div>"


__all__ = ["default_spec_repr_func", "html_grid", "visualize_audio", "visualize_audio_with_player"]
