"""Drawing retrieval results with matplotlib (an optional dependency: ``pip install oml-core[viz]``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from oml_core.errors import OMLError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from oml_core.retrieval.results import RetrievalResults

BLUE = (0, 0, 255)
GREEN = (0, 200, 0)
RED = (255, 0, 0)
GRAY = (120, 120, 120)
BLACK = (0, 0, 0)

Color = tuple[int, int, int]


def import_pyplot() -> Any:
    """matplotlib.pyplot with a non-interactive backend unless one is already chosen; a clear error if missing."""
    try:
        import matplotlib
    except ImportError as exc:
        raise OMLError(
            "drawing retrieval results needs matplotlib, which is not installed: pip install matplotlib "
            "(or pip install oml-core[viz])"
        ) from exc
    if "matplotlib.pyplot" not in __import__("sys").modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _to_array(image: Any) -> np.ndarray:
    if isinstance(image, str | os.PathLike):
        from PIL import Image

        with Image.open(image) as im:
            return np.asarray(im.convert("RGB"))
    if isinstance(image, Tensor):
        x = image.detach().cpu().float()
        if x.ndim == 3 and x.shape[0] in (1, 3):
            x = x.permute(1, 2, 0)
        x = (x - x.min()) / (x.max() - x.min() + 1e-12)
        return x.squeeze(-1).numpy() if x.shape[-1] == 1 else x.numpy()
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise OMLError(f"cannot draw an image of shape {arr.shape}; expected (H, W) or (H, W, C)")
    return arr


def image_source(dataset: Any, images: Sequence[Any] | Callable[[int], Any] | None) -> Callable[[int, Color], np.ndarray]:
    """``item, color -> (H, W, C) array`` from ``images`` or a dataset (see ``RetrievalResults.visualize``)."""
    if images is not None:
        if callable(images):
            fn = images
            return lambda item, color: _to_array(fn(item))
        seq = images
        return lambda item, color: _to_array(seq[item])
    if dataset is None:
        raise OMLError("visualize needs images: pass images=[path or array per item], a function item -> image, or a dataset")
    if callable(getattr(dataset, "visualize", None)):
        return lambda item, color: _to_array(dataset.visualize(item, color))
    paths = None
    if hasattr(dataset, "get_paths"):
        paths = dataset.get_paths()
    elif hasattr(dataset, "paths"):
        paths = dataset.paths
    if paths is None:
        raise OMLError(
            f"cannot find images in {type(dataset).__name__}: it has no visualize(item, color), get_paths() or 'paths'; "
            "accumulate paths with EmbeddingMetrics(extra_keys=('paths',)) or pass images=..."
        )
    return lambda item, color: _to_array(paths[item])


def check_query_ids(rr: RetrievalResults, query_ids: Sequence[int]) -> None:
    """A clear error for an empty or out-of-range list of query ids."""
    if not query_ids:
        raise OMLError("visualize needs at least one query id")
    bad = [q for q in query_ids if not 0 <= q < len(rr)]
    if bad:
        raise OMLError(f"query ids {bad} are out of range: there are {len(rr)} queries")


def _frame(ax: Any, color: Color) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(tuple(c / 255 for c in color))
        spine.set_linewidth(4)


def draw_retrieval(
    rr: RetrievalResults,
    query_ids: list[int],
    *,
    dataset: Any,
    images: Sequence[Any] | Callable[[int], Any] | None,
    n_galleries_to_show: int,
    n_gt_to_show: int,
    path: str | os.PathLike[str] | None,
    show: bool,
    gallery_source: Callable[[int, Color], np.ndarray] | None = None,
) -> Figure:
    """Draw ``query_ids`` with their retrieved items; ``gallery_source`` draws the gallery items when they come from
    another dataset than the queries (``RetrievalResults.visualize_qg``)."""
    plt = import_pyplot()
    check_query_ids(rr, query_ids)
    load = image_source(dataset, images)
    load_gallery = gallery_source if gallery_source is not None else load
    ids, dist = rr.padded_ids.cpu(), rr.padded_distances.cpu()
    correct = rr.is_correct() if rr.n_gt is not None else None
    gt = rr.gt_ids if n_gt_to_show > 0 else None
    n_show = max(1, min(n_galleries_to_show, max(int((ids[q] >= 0).sum()) for q in query_ids)))
    n_gt = n_gt_to_show if gt is not None else 0
    n_cols = 1 + n_show + n_gt

    def query_item(q: int) -> int:
        return int(rr.query_item_ids[q]) if rr.query_item_ids is not None else q

    def gallery_item(g: int) -> int:
        return int(rr.gallery_item_ids[g]) if rr.gallery_item_ids is not None else g

    fig, axes = plt.subplots(len(query_ids), n_cols, figsize=(2.4 * n_cols, 2.6 * len(query_ids)), squeeze=False)
    for row, q in enumerate(query_ids):
        ax = axes[row][0]
        ax.imshow(load(query_item(q), BLUE))
        ax.set_title(f"Query #{q}", fontsize=9)
        _frame(ax, BLUE)
        for j in range(n_show):
            ax = axes[row][1 + j]
            g = int(ids[q, j])
            if g < 0:
                ax.axis("off")
                continue
            color = BLACK if correct is None else (GREEN if bool(correct[q, j]) else RED)
            ax.imshow(load_gallery(gallery_item(g), color))
            ax.set_title(f"Gallery #{g} - {float(dist[q, j]):.3f}", fontsize=9)
            _frame(ax, color)
        for j in range(n_gt):
            ax = axes[row][1 + n_show + j]
            if gt is None or j >= len(gt[q]):
                ax.axis("off")
                continue
            ax.imshow(load_gallery(gallery_item(int(gt[q][j])), GRAY))
            ax.set_title("GT", fontsize=9)
            _frame(ax, GRAY)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), format="png")
    if show:
        fig.show()
    return fig


def as_numpy_image(image: Any) -> np.ndarray:
    """Public helper for plugins: any supported image (path, array, PIL image, CHW tensor) as an array."""
    return _to_array(image)


__all__ = ["as_numpy_image", "check_query_ids", "draw_retrieval", "image_source", "import_pyplot"]
