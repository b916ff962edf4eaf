"""A seeded random state dict in any ECAPA-TDNN's key layout, and a seeded input, computed the same way in this
project's venv and in the peers venv (bench/models/ecapa_reference.py), so that the two implementations can be compared
on identical weights. Only torch is imported here."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

WEIGHTS_SEED = 20
INPUT_SEED = 21
#: two clips of 1.5 s at 16 kHz
INPUT_SHAPE = (2, 24_000)


def random_ecapa_state(template: Mapping[str, torch.Tensor], seed: int = WEIGHTS_SEED) -> dict[str, torch.Tensor]:
    """Every learnable tensor and batch-norm statistic drawn from one generator, in sorted key order; the front
    end's fixed buffers (``torchfbank.*``) are taken from ``template`` as they are."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key in sorted(template):
        value = template[key]
        shape = tuple(value.shape)
        if key.startswith("torchfbank."):
            state[key] = value.clone()
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif key.endswith("running_mean"):
            state[key] = 0.1 * torch.randn(shape, generator=generator)
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=generator) / math.sqrt(fan_in)
        elif key.endswith(".weight"):  # batch-norm scale
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    return state


def seeded_input(seed: int = INPUT_SEED) -> torch.Tensor:
    """Noise plus two tones, ``INPUT_SHAPE``, in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(INPUT_SHAPE[1], dtype=torch.float32) / 16_000
    tones = torch.stack([0.3 * torch.sin(2 * math.pi * 220 * t), 0.3 * torch.sin(2 * math.pi * 440 * t + 1.0)])
    return (tones + 0.05 * torch.randn(INPUT_SHAPE, generator=generator)).clamp(-1, 1)
