"""Checks for every registered transform: it takes an RGB pillow image, returns an image or a valid float tensor,
is repeatable under ``torch.manual_seed`` and survives pickling (DataLoader workers receive a copy)."""

from __future__ import annotations

import pickle

import numpy as np
import torch
from PIL import Image

from oml_core.host import Host
from oml_core.registry import ComponentSpec
from oml_core.testing.contracts import build_example, register_contract


def _sample_image() -> Image.Image:
    # not square and not uniform, so that crops, flips and resizes all change something
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8))


def _as_array(output: object) -> np.ndarray:
    if isinstance(output, torch.Tensor):
        return output.detach().cpu().numpy()
    assert isinstance(output, Image.Image), f"a transform must return a PIL image or a tensor, got {type(output).__name__}"
    return np.asarray(output)


@register_contract("transforms")
def transform_output_is_image_or_float_tensor(host: Host, spec: ComponentSpec) -> None:
    """Called on a 40x30 RGB pillow image, the transform returns a pillow image or a finite float tensor (C, H, W)."""
    transform = build_example(host, spec)
    assert callable(transform), f"transform {spec.name!r} is not callable"
    output = transform(_sample_image())
    if isinstance(output, torch.Tensor):
        assert output.is_floating_point(), f"{spec.name!r} returned a {output.dtype} tensor; datasets need float tensors"
        assert output.ndim == 3, f"{spec.name!r} returned shape {tuple(output.shape)}; expected (C, H, W)"
        assert output.shape[0] in (1, 3), f"{spec.name!r} returned {output.shape[0]} channels"
        assert bool(torch.isfinite(output).all()), f"{spec.name!r} returned NaN or inf"
    else:
        assert isinstance(output, Image.Image), f"{spec.name!r} returned {type(output).__name__}, not an image or tensor"


@register_contract("transforms")
def transform_is_repeatable_under_seed(host: Host, spec: ComponentSpec) -> None:
    """The same ``torch.manual_seed`` gives the same output."""
    transform = build_example(host, spec)
    image = _sample_image()
    outputs = []
    for _ in range(2):
        torch.manual_seed(1234)
        outputs.append(_as_array(transform(image)))
    assert outputs[0].shape == outputs[1].shape and np.array_equal(outputs[0], outputs[1]), (
        f"{spec.name!r} gives different outputs under the same torch.manual_seed"
    )


@register_contract("transforms")
def transform_survives_pickling(host: Host, spec: ComponentSpec) -> None:
    """A pickled copy behaves like the original (no lambdas or open handles: DataLoader workers need copies)."""
    transform = build_example(host, spec)
    try:
        copy = pickle.loads(pickle.dumps(transform))
    except Exception as exc:  # noqa: BLE001 - any pickling failure is the finding
        raise AssertionError(
            f"{spec.name!r} cannot be pickled ({type(exc).__name__}: {exc}); DataLoader workers need a copy"
        ) from None
    image = _sample_image()
    torch.manual_seed(99)
    expected = _as_array(transform(image))
    torch.manual_seed(99)
    got = _as_array(copy(image))
    assert np.array_equal(expected, got), f"a pickled copy of {spec.name!r} gives a different output"
