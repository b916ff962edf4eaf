"""Batched inference of a pairwise model on pairs given as two index tensors into two item sources.

A source is either a tensor of embeddings (pairs are gathered chunk by chunk, no DataLoader) or a sequence of
images (``ImagesFromPaths``, ``ImagesFromDataset``) read by a DataLoader, one pair per item. The pairs are never
materialised as Python lists: OML built one list per query and spent hours there (its issue #599).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from oml_core.errors import OMLError


class ImageSource(Protocol):
    """Items by position: ``source[i]`` is a float image tensor ``(C, H, W)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Tensor: ...


class ImagesFromPaths:
    """Images read from ``paths`` (pillow, RGB) and passed through ``transform``.

    Example:
        >>> source = ImagesFromPaths(["a.jpg", "b.jpg"], transform=None)   # doctest: +SKIP
        >>> source[0].shape                                                 # doctest: +SKIP
        torch.Size([3, 224, 224])
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], transform: Callable[[Any], Any] | None) -> None:
        from oml_core.data.transforms import get_normalisation_torch

        self.paths = [os.fspath(p) for p in paths]
        self.transform = transform if transform is not None else get_normalisation_torch()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor:
        from oml_core.data import read_image

        tensor = self.transform(read_image(self.paths[index]))
        if not isinstance(tensor, Tensor) or tensor.ndim != 3:
            raise OMLError(f"the transforms of a pairwise postprocessor must return image tensors (C, H, W), got {tensor!r:.80}")
        return tensor


class ImagesFromDataset:
    """The ``key`` tensors of a dataset's items (``DatasetQueryGallery``: ``input_tensors``), by dataset position."""

    def __init__(self, dataset: Any, key: str = "input_tensors") -> None:
        self.dataset, self.key = dataset, key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Tensor:
        item = self.dataset[index]
        if isinstance(item, Tensor):
            return item
        if not isinstance(item, Mapping) or self.key not in item:
            keys = ", ".join(map(str, item)) if isinstance(item, Mapping) else type(item).__name__
            raise OMLError(f"pairwise inference: the dataset's items have no {self.key!r} key (got {keys})")
        return item[self.key]  # type: ignore[no-any-return]


class _Pairs(Dataset[tuple[Tensor, Tensor]]):
    def __init__(self, source1: ImageSource, source2: ImageSource, ids1: Tensor, ids2: Tensor) -> None:
        self.source1, self.source2, self.ids1, self.ids2 = source1, source2, ids1, ids2

    def __len__(self) -> int:
        return len(self.ids1)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.source1[int(self.ids1[index])], self.source2[int(self.ids2[index])]


def _device_of(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def pairwise_inference(
    model: Any,
    source1: Tensor | ImageSource,
    source2: Tensor | ImageSource,
    ids1: Tensor,
    ids2: Tensor,
    *,
    batch_size: int = 128,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    use_fp16: bool = False,
    progress: bool = False,
) -> Tensor:
    """``model.predict(source1[ids1[i]], source2[ids2[i]])`` for every ``i``, in batches: a float32 CPU tensor ``(P,)``.

    Tensor sources (embeddings ``(N, D)``) are indexed chunk by chunk; image sources go through a DataLoader with
    ``num_workers``. The model runs in eval mode without gradients (its mode is restored) on ``device`` (default:
    where its parameters are).

    Example:
        >>> from oml_siamese.models import TrivialDistanceSiamese
        >>> queries, gallery = torch.zeros(2, 3), torch.eye(3)
        >>> pairwise_inference(TrivialDistanceSiamese(), queries, gallery, torch.tensor([0, 1]), torch.tensor([2, 0])).tolist()
        [1.0, 1.0]
    """
    ids1, ids2 = torch.as_tensor(ids1, dtype=torch.long).reshape(-1), torch.as_tensor(ids2, dtype=torch.long).reshape(-1)
    if len(ids1) != len(ids2):
        raise OMLError(f"pairwise inference: ids1 and ids2 differ in length ({len(ids1)} vs {len(ids2)})")
    if batch_size < 1:
        raise OMLError(f"pairwise inference: batch_size must be >= 1, got {batch_size}")
    for name, ids, source in (("ids1", ids1, source1), ("ids2", ids2, source2)):
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= len(source)):
            raise OMLError(f"pairwise inference: {name} holds indices outside [0, {len(source)})")
    if len(ids1) == 0:
        return torch.zeros(0)
    is_module = isinstance(model, nn.Module)
    target = torch.device(device) if device is not None else (_device_of(model) if is_module else torch.device("cpu"))
    was_training = bool(getattr(model, "training", False))
    if is_module:
        model.eval()
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_fp16 and target.type == "cuda" else nullcontext()
    batches: Any
    if isinstance(source1, Tensor) and isinstance(source2, Tensor):
        starts = range(0, len(ids1), batch_size)
        batches = ((source1[ids1[s : s + batch_size]], source2[ids2[s : s + batch_size]]) for s in starts)
        total = len(starts)
    else:
        if isinstance(source1, Tensor) or isinstance(source2, Tensor):
            raise OMLError("pairwise inference: both sources must be embeddings (tensors) or both images")
        loader = DataLoader(
            _Pairs(source1, source2, ids1, ids2),
            batch_size=batch_size,
            num_workers=num_workers,
            shuffle=False,
            pin_memory=target.type == "cuda",
        )
        batches, total = loader, len(loader)
    chunks: list[Tensor] = []
    try:
        with torch.no_grad(), autocast:
            for x1, x2 in tqdm(batches, total=total, desc="Pairwise inference", disable=not progress, leave=False):
                scores = model.predict(x1.to(target, non_blocking=True), x2.to(target, non_blocking=True))
                if not isinstance(scores, Tensor) or scores.shape != (len(x1),):
                    got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
                    raise OMLError(
                        f"{type(model).__name__}.predict must return one score per pair, shape ({len(x1)},); got {got}"
                    )
                chunks.append(scores.float().cpu())
    finally:
        if is_module:
            model.train(was_training)
    scores = torch.cat(chunks)
    if not torch.isfinite(scores).all():
        raise OMLError(
            f"{type(model).__name__}.predict returned NaN or infinite scores for {int((~torch.isfinite(scores)).sum())} pairs"
        )
    return scores


__all__ = ["ImageSource", "ImagesFromDataset", "ImagesFromPaths", "pairwise_inference"]
