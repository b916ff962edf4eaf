"""Checks for every registered extractor: it builds from its example, maps ``(2, 3, H, W)`` images to finite
``(2, feat_dim)`` embeddings, and its state_dict round-trips (through ``torch.save`` / ``weights_only`` loading)
into a fresh instance that then computes the same embeddings."""

from __future__ import annotations

import io

import torch

from oml_core.host import Host
from oml_core.registry import ComponentSpec
from oml_core.testing.contracts import build_example, register_contract

#: Divisible by the patch sizes 8, 14 and 16 minus a remainder, so that odd grids are exercised too.
IMAGE_SIZE = 48


def _images(seed: int = 0, extractor: object = None) -> torch.Tensor:
    # an extractor with a fixed input size (CLIP's position table) says so with ``input_size``
    size = int(getattr(extractor, "input_size", IMAGE_SIZE))
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


@register_contract("extractors")
def extractor_maps_images_to_embeddings(host: Host, spec: ComponentSpec) -> None:
    """``extractor(images (2, 3, H, W))`` is a finite float tensor ``(2, feat_dim)`` with an int ``feat_dim > 0``."""
    extractor = build_example(host, spec)
    assert isinstance(extractor, torch.nn.Module), f"{spec.name!r} built a {type(extractor).__name__}, not an nn.Module"
    feat_dim = extractor.feat_dim
    assert isinstance(feat_dim, int) and feat_dim > 0, f"feat_dim of {spec.name!r} is {feat_dim!r}"
    extractor.eval()
    with torch.no_grad():
        out = extractor(_images(0, extractor))
    assert isinstance(out, torch.Tensor) and out.dtype.is_floating_point, f"{spec.name!r} returned {type(out).__name__}"
    assert tuple(out.shape) == (2, feat_dim), f"{spec.name!r} mapped 2 images to {tuple(out.shape)}"
    assert torch.isfinite(out).all(), f"{spec.name!r} returned non-finite embeddings"


@register_contract("extractors")
def extractor_state_dict_round_trips(host: Host, spec: ComponentSpec) -> None:
    """A fresh instance loads another's state_dict strictly (after a ``weights_only`` save/load) and then agrees."""
    first = build_example(host, spec).eval()
    second = build_example(host, spec).eval()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    with torch.no_grad():
        images = _images(1, first)
        assert torch.allclose(first(images), second(images), atol=1e-5), f"{spec.name!r} differs after a state_dict round trip"


@register_contract("extractors")
def extractor_trains_with_gradients(host: Host, spec: ComponentSpec) -> None:
    """In train mode the embeddings carry gradients to the parameters (an extractor is fine-tuned)."""
    extractor = build_example(host, spec).train()
    params = [p for p in extractor.parameters() if p.requires_grad]
    assert params, f"{spec.name!r} has no trainable parameters"
    embeddings = extractor(_images(2, extractor))
    # a fixed direction, not the squared norm: that is constant for L2-normalised embeddings, so its gradient is
    # zero up to rounding and the check passed or failed by chance
    direction = torch.randn(embeddings.shape[1:], generator=torch.Generator().manual_seed(3)).to(embeddings)
    (embeddings * direction).sum().backward()
    assert any(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in params), (
        f"{spec.name!r}: no parameter received a finite, non-zero gradient"
    )
