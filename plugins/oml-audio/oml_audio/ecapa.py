"""ECAPA-TDNN speaker embedder (Desplanques et al., 2020) in plain torch, in the variant published by Tao Ruijie
(``exps/pretrain.model``, the checkpoint OML 4.0 wraps as ``ecapa_tdnn_taoruijie``).

Module names and buffers follow that checkpoint's keys exactly, so it loads with ``strict=True``:
``torchfbank.0`` (pre-emphasis filter), ``torchfbank.1`` (log-mel front end: ``spectrogram.window``,
``mel_scale.fb``), ``conv1``/``bn1``, three ``Bottle2neck`` blocks ``layer1..3`` (Res2Net convs with squeeze-excite),
``layer4`` (multi-layer feature aggregation), ``attention`` (attentive statistics pooling), ``bn5``/``fc6``/``bn6``.
The front end (STFT, HTK mel filters) is computed here with torch only: no torchaudio.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

SAMPLE_RATE = 16_000


# ================================================================================================ front end
def hz_to_mel(hz: Tensor) -> Tensor:
    """HTK mel scale."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> Tensor:
    """Triangular HTK mel filters without area normalisation, ``(n_freqs, n_mels)``: filter ``m`` rises from the
    ``m``-th to the ``m+1``-th of ``n_mels + 2`` points equally spaced in mel between ``f_min`` and ``f_max`` and
    falls to the ``m+2``-th.

    Example:
        >>> mel_filterbank(257, 20.0, 7600.0, 80, 16000).shape
        torch.Size([257, 80])
    """
    freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(torch.tensor(f_min))), float(hz_to_mel(torch.tensor(f_max))), n_mels + 2))
    widths = edges[1:] - edges[:-1]
    offsets = edges.unsqueeze(0) - freqs.unsqueeze(1)  # (n_freqs, n_mels + 2)
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class PreEmphasis(nn.Module):
    """``y[t] = x[t] - coef * x[t - 1]`` (the first sample reflected), as a 2-tap convolution."""

    def __init__(self, coef: float = 0.97) -> None:
        super().__init__()
        self.register_buffer("flipped_filter", torch.tensor([[[-coef, 1.0]]]))

    def forward(self, x: Tensor) -> Tensor:
        padded = nn.functional.pad(x.unsqueeze(1), (1, 0), mode="reflect")
        return nn.functional.conv1d(padded, self.flipped_filter).squeeze(1)


class _Window(nn.Module):
    def __init__(self, win_length: int) -> None:
        super().__init__()
        self.register_buffer("window", torch.hamming_window(win_length))


class _MelScale(nn.Module):
    def __init__(self, fb: Tensor) -> None:
        super().__init__()
        self.register_buffer("fb", fb)


class MelSpectrogram(nn.Module):
    """Power mel spectrogram ``(B, n_mels, frames)``: centred STFT (reflect padding) with a Hamming window, power
    2, HTK mel filters."""

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        f_min: float = 20.0,
        f_max: float = 7600.0,
        n_mels: int = 80,
    ) -> None:
        super().__init__()
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.spectrogram = _Window(win_length)
        self.mel_scale = _MelScale(mel_filterbank(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate))

    def forward(self, x: Tensor) -> Tensor:
        spec = torch.stft(
            x,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.spectrogram.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        power = spec.abs().pow(2.0)
        return torch.matmul(power.transpose(-1, -2), self.mel_scale.fb).transpose(-1, -2)


# ================================================================================================ blocks
class SEModule(nn.Module):
    """Squeeze-and-excitation over channels (no batch norm in the bottleneck, as in the published model)."""

    def __init__(self, channels: int, bottleneck: int = 128) -> None:
        super().__init__()
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool1d(1),
            nn.Conv1d(channels, bottleneck, kernel_size=1),
            nn.ReLU(),
            nn.Conv1d(bottleneck, channels, kernel_size=1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.se(x)


class Bottle2neck(nn.Module):
    """Res2Net block: 1x1 conv, ``scale - 1`` hierarchical dilated convs on channel groups, 1x1 conv, SE, residual.
    Each conv is followed by ReLU then batch norm (the published order)."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int = 8) -> None:
        super().__init__()
        width = channels // scale
        self.width, self.nums = width, scale - 1
        self.conv1 = nn.Conv1d(channels, width * scale, kernel_size=1)
        self.bn1 = nn.BatchNorm1d(width * scale)
        padding = (kernel_size // 2) * dilation
        self.convs = nn.ModuleList(
            nn.Conv1d(width, width, kernel_size=kernel_size, dilation=dilation, padding=padding) for _ in range(self.nums)
        )
        self.bns = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(self.nums))
        self.conv3 = nn.Conv1d(width * scale, channels, kernel_size=1)
        self.bn3 = nn.BatchNorm1d(channels)
        self.relu = nn.ReLU()
        self.se = SEModule(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.relu(self.conv1(x)))
        groups = torch.split(out, self.width, dim=1)
        outputs = []
        carried: Tensor | None = None
        for i in range(self.nums):
            carried = groups[i] if carried is None else carried + groups[i]
            carried = self.bns[i](self.relu(self.convs[i](carried)))
            outputs.append(carried)
        outputs.append(groups[self.nums])
        out = self.bn3(self.relu(self.conv3(torch.cat(outputs, dim=1))))
        return self.se(out) + x


# ================================================================================================ the model
class ECAPATDNN(nn.Module):
    """Waveforms ``(B, samples)`` at 16 kHz -> 192-d speaker embeddings. ``channels`` is C (1024 published)."""

    def __init__(self, channels: int = 1024, embedding_size: int = 192) -> None:
        super().__init__()
        self.torchfbank = nn.Sequential(PreEmphasis(), MelSpectrogram())
        self.conv1 = nn.Conv1d(80, channels, kernel_size=5, stride=1, padding=2)
        self.relu = nn.ReLU()
        self.bn1 = nn.BatchNorm1d(channels)
        self.layer1 = Bottle2neck(channels, kernel_size=3, dilation=2)
        self.layer2 = Bottle2neck(channels, kernel_size=3, dilation=3)
        self.layer3 = Bottle2neck(channels, kernel_size=3, dilation=4)
        self.layer4 = nn.Conv1d(3 * channels, 1536, kernel_size=1)
        self.attention = nn.Sequential(
            nn.Conv1d(4608, 256, kernel_size=1),
            nn.ReLU(),
            nn.BatchNorm1d(256),
            nn.Tanh(),
            nn.Conv1d(256, 1536, kernel_size=1),
            nn.Softmax(dim=2),
        )
        self.bn5 = nn.BatchNorm1d(3072)
        self.fc6 = nn.Linear(3072, embedding_size)
        self.bn6 = nn.BatchNorm1d(embedding_size)

    def features(self, waveforms: Tensor) -> Tensor:
        """Log-mel features with per-utterance mean removed ``(B, 80, frames)``; no gradients (a fixed front end)."""
        with torch.no_grad():
            logmel = (self.torchfbank(waveforms) + 1e-6).log()
            return logmel - logmel.mean(dim=-1, keepdim=True)

    def forward(self, waveforms: Tensor) -> Tensor:
        x = self.bn1(self.relu(self.conv1(self.features(waveforms))))
        x1 = self.layer1(x)
        x2 = self.layer2(x + x1)
        x3 = self.layer3(x + x1 + x2)
        x = self.relu(self.layer4(torch.cat((x1, x2, x3), dim=1)))
        frames = x.shape[-1]
        mean = x.mean(dim=2, keepdim=True).expand(-1, -1, frames)
        std = x.var(dim=2, keepdim=True).clamp(min=1e-4).sqrt().expand(-1, -1, frames)
        weights = self.attention(torch.cat((x, mean, std), dim=1))
        mu = (x * weights).sum(dim=2)
        sigma = ((x**2 * weights).sum(dim=2) - mu**2).clamp(min=1e-4).sqrt()
        return self.bn6(self.fc6(self.bn5(torch.cat((mu, sigma), dim=1))))


def count_frames(n_samples: int, hop_length: int = 160) -> int:
    """Frames of the centred STFT for ``n_samples`` samples.

    Example:
        >>> count_frames(16000)
        101
    """
    return 1 + math.floor(n_samples / hop_length)


__all__ = [
    "ECAPATDNN", "MelSpectrogram", "PreEmphasis", "SAMPLE_RATE", "count_frames", "hz_to_mel", "mel_filterbank", "mel_to_hz"
]  # fmt: skip
