"""The HTML page of ``oml report``: sections with matplotlib figures and thumbnails embedded as data URIs."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

from oml_core.report.analysis import RetrievalAnalysis, analyse
from oml_core.report.data import ReportError, RunData, load_run_data

THUMBNAIL_PX = 112

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0} td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4} td.name,th.name{text-align:left} .muted{color:#777;font-size:.9em}
figure{margin:.5em 0;display:inline-block;vertical-align:top} figure img{max-width:100%}
.plots{display:grid;grid-template-columns:1fr 1fr;gap:8px}
.row{display:flex;gap:6px;align-items:flex-start;margin:6px 0}
.thumb{display:flex;flex-direction:column;align-items:center;font-size:.72em;width:124px}
.thumb img{width:112px;height:112px;object-fit:cover;border:5px solid #000;box-sizing:content-box}
.thumb.query img{border-color:#1f5fd6} .thumb.correct img{border-color:#1a9c3a} .thumb.incorrect img{border-color:#d62a1f}
.thumb.missing .ph{width:112px;height:112px;border:5px solid #999;background:#eee;
  display:flex;align-items:center;justify-content:center}
"""


def _figure_uri(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _img(uri: str, alt: str, section: str) -> str:
    return f'<figure><img src="{uri}" alt="{html.escape(alt)}" data-plot="{section}"></figure>'


def _format(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else html.escape(str(value))


def _split_name(name: str) -> tuple[str, str]:
    """``"OVERALL/cmc/1"`` -> ``("OVERALL", "cmc@1")``."""
    parts = name.split("/")
    if len(parts) >= 3:
        return "/".join(parts[:-2]), f"{parts[-2]}@{parts[-1]}"
    return "", name


# ---------------------------------------------------------------------------------------------------- sections
def _metrics_sections(data: RunData) -> str:
    if not data.history:
        return '<h2 id="metrics">Metrics</h2><p class="muted">no validation in metrics.json</p>'
    last = data.history[-1]
    by_category: dict[str, dict[str, float]] = {}
    for name, value in last.items():
        if name in ("epoch", "step"):
            continue
        category, metric = _split_name(name)
        by_category.setdefault(category or "OVERALL", {})[metric] = value
    metric_names = sorted({m for values in by_category.values() for m in values})
    categories = ["OVERALL", *sorted(c for c in by_category if c != "OVERALL")]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metric_names)
    rows = "".join(
        f'<tr data-category="{html.escape(c)}"><td class="name">{html.escape(c)}</td>'
        + "".join(f"<td>{_format(by_category[c].get(m, ''))}</td>" for m in metric_names)
        + "</tr>"
        for c in categories
        if c in by_category
    )
    table = f'<table id="metrics-by-category"><tr><th class="name">category</th>{head}</tr>{rows}</table>'
    overall = [m for m in metric_names if f"OVERALL/{m.replace('@', '/')}" in last]
    head2 = "".join(f"<th>{html.escape(m)}</th>" for m in overall)
    rows2 = "".join(
        f'<tr data-step="{row.get("step")}"><td>{row.get("epoch")}</td><td>{row.get("step")}</td>'
        + "".join(f"<td>{_format(row.get('OVERALL/' + m.replace('@', '/'), ''))}</td>" for m in overall)
        + "</tr>"
        for row in data.history
    )
    history = f'<table id="metrics-per-validation"><tr><th>epoch</th><th>step</th>{head2}</tr>{rows2}</table>'
    plot = _img(_history_figure(data.history, overall), "OVERALL metrics per validation", "history")
    return (
        f'<h2 id="metrics">Metrics by category (last validation: epoch {last.get("epoch")}, step {last.get("step")})</h2>{table}'
        f'<h2 id="history">Metrics per validation</h2>{history}{plot}'
    )


def _history_figure(history: list[dict[str, Any]], metrics: list[str]) -> str:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.2))
    steps = [row.get("step", i) for i, row in enumerate(history)]
    for metric in metrics:
        axis.plot(
            steps, [row.get("OVERALL/" + metric.replace("@", "/"), float("nan")) for row in history], marker="o", label=metric
        )
    axis.set_xlabel("training step")
    axis.set_ylabel("value")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, ncol=2)
    return _figure_uri(figure)


def _cmc_figure(analysis: RetrievalAnalysis) -> str:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.6, 3.6))
    ks = list(range(1, len(analysis.cmc) + 1))
    axis.plot(ks, analysis.cmc.tolist(), marker="o" if len(ks) <= 20 else None)
    axis.set_xlabel("k")
    axis.set_ylabel("CMC@k")
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.set_title(f"CMC@k ({analysis.n_queries} queries, {analysis.n_gallery} gallery items)", fontsize=10)
    return _figure_uri(figure)


def _fnmr_figure(analysis: RetrievalAnalysis) -> str:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.6, 3.6))
    keep = analysis.fmr > 0
    if keep.any():
        axis.plot(analysis.fmr[keep].tolist(), analysis.fnmr[keep].tolist())
        axis.set_xscale("log")
    axis.set_xlabel("FMR (false match rate)")
    axis.set_ylabel("FNMR (false non-match rate)")
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3, which="both")
    axis.set_title(f"FNMR against FMR ({analysis.distance} distance)", fontsize=10)
    return _figure_uri(figure)


def _distances_figure(analysis: RetrievalAnalysis) -> str:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.6, 3.6))
    both = [t for t in (analysis.positive_distances, analysis.negative_distances) if len(t)]
    if both:
        import torch

        joined = torch.cat(both)
        bins = torch.linspace(float(joined.min()), float(joined.max()) + 1e-6, 41).tolist()
        axis.hist(analysis.negative_distances.tolist(), bins=bins, alpha=0.6, density=True, color="#d62a1f",
                  label=f"negative pairs ({len(analysis.negative_distances)})")  # fmt: skip
        axis.hist(analysis.positive_distances.tolist(), bins=bins, alpha=0.6, density=True, color="#1a9c3a",
                  label=f"positive pairs ({len(analysis.positive_distances)})")  # fmt: skip
        axis.legend(fontsize=8)
    axis.set_xlabel(f"{analysis.distance} distance")
    axis.set_ylabel("density")
    axis.set_title("Pair distances", fontsize=10)
    return _figure_uri(figure)


def _projection_figure(analysis: RetrievalAnalysis) -> str:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 5))
    labels = analysis.projection_labels
    unique = labels.unique()
    colours = plt.get_cmap("tab20" if len(unique) > 10 else "tab10")
    index = {int(label): i for i, label in enumerate(unique.tolist())}
    points = analysis.projection
    axis.scatter(points[:, 0].tolist(), points[:, 1].tolist(), s=14,
                 c=[colours(index[int(label)] % colours.N) for label in labels.tolist()])  # fmt: skip
    first, second = analysis.projection_explained
    axis.set_xlabel(f"PC 1 ({first:.0%} of variance)")
    axis.set_ylabel(f"PC 2 ({second:.0%} of variance)")
    axis.set_title(f"Validation embeddings (PCA), coloured by label ({len(unique)} labels)", fontsize=10)
    return _figure_uri(figure)


def _thumbnail(path: str | None) -> str | None:
    if not path:
        return None
    try:
        from PIL import Image

        with Image.open(path) as opened:
            image = opened.convert("RGB")
        image.thumbnail((THUMBNAIL_PX * 2, THUMBNAIL_PX * 2))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    except (OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _tile(kind: str, path: str | None, caption: str) -> str:
    uri = _thumbnail(path)
    title = html.escape(str(path or ""))
    if uri is None:
        return f'<div class="thumb {kind} missing" title="{title}"><div class="ph">no image</div>{caption}</div>'
    return f'<div class="thumb {kind}" title="{title}"><img src="{uri}" alt="{kind}">{caption}</div>'


def _worst_section(analysis: RetrievalAnalysis, snapshot: dict[str, Any]) -> str:
    paths = snapshot.get("paths")
    labels = snapshot["labels"]
    rows = []
    for query in analysis.worst:
        tiles = [_tile("query", paths[query.item] if paths else None,
                       f"query #{query.item}<br>label {query.label}<br>"
                       f"{analysis.worst_metric}={query.metric_value:.2f}")]  # fmt: skip
        for item, dist, correct in query.results:
            kind = "correct" if correct else "incorrect"
            tiles.append(_tile(kind, paths[item] if paths else None, f"#{item} label {int(labels[item])}<br>d={dist:.3f}"))
        rows.append(f'<div class="row worst-query" data-query="{query.item}">{"".join(tiles)}</div>')
    legend = (
        '<p class="muted">blue frame: query; green: a correct result (same label); red: an incorrect one. '
        f"The {len(analysis.worst)} queries with the lowest {analysis.worst_metric}, worst first.</p>"
    )
    return f'<h2 id="worst-queries">Worst queries</h2>{legend}{"".join(rows)}'


# ---------------------------------------------------------------------------------------------------- the page
def render_report(data: RunData, *, top_k: int = 5, n_worst: int = 8) -> str:
    """The report's HTML for ``data`` (see :func:`write_report`)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
    except ImportError:
        raise ReportError("oml report draws its plots with matplotlib: pip install 'oml-core[viz]'") from None
    name = html.escape(data.run_dir.resolve().name)
    parts = [
        f"<h1>OML run report: {name}</h1>",
        f'<p class="muted">status: {html.escape(data.status)}; {len(data.history)} validations; '
        f"extractor: {html.escape(str(data.config.get('extractor', {}).get('type', '?')))}; "
        f"run directory: {html.escape(str(data.run_dir.resolve()))}</p>",
        _metrics_sections(data),
    ]
    if data.snapshot is None:
        parts.append(
            '<h2 id="retrieval">Retrieval plots</h2><p class="muted">this run has no validation/embeddings.pt '
            "(runs of older OML versions): only the metrics are shown.</p>"
        )
    else:
        analysis = analyse(data.snapshot, top_k=top_k, n_worst=n_worst)
        snap = data.snapshot
        parts += [
            f'<h2 id="retrieval">Retrieval on the last validation (epoch {snap.get("epoch")}, step {snap.get("step")})</h2>',
            '<div class="plots">',
            f'<div id="cmc">{_img(_cmc_figure(analysis), "CMC@k curve", "cmc")}</div>',
            f'<div id="fnmr-fmr">{_img(_fnmr_figure(analysis), "FNMR against FMR", "fnmr-fmr")}</div>',
            f'<div id="distances">{_img(_distances_figure(analysis), "positive and negative pair distances", "distances")}</div>',
            f'<div id="projection">{_img(_projection_figure(analysis), "2-D projection of the embeddings", "projection")}</div>',
            "</div>",
            _worst_section(analysis, snap),
        ]
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>OML report: {name}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def write_report(run_dir: str | Path, out: str | Path | None = None, *, top_k: int = 5, n_worst: int = 8) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``<run_dir>/report.html``) and return its path.

    Example:
        >>> write_report("runs/tiny-train-20260101-120000-000000", top_k=5, n_worst=8)   # doctest: +SKIP
        PosixPath('runs/tiny-train-20260101-120000-000000/report.html')
    """
    data = load_run_data(run_dir)
    page = render_report(data, top_k=top_k, n_worst=n_worst)
    target = Path(out) if out is not None else Path(run_dir) / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(target)
    return target
