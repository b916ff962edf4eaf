"""``oml report``: one self-contained HTML file, checked in headless Chromium (Debian's ``chromium`` package,
installed by scripts/system-packages.sh) and against the run's own metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from oml_core.cli import main
from oml_core.report import ReportError, analyse, load_run_data, write_report
from oml_core.testing.trackers import train_tiny_run

CHECKER = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.dataset.images = imgs.length;
  document.body.dataset.decoded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const plots = [...document.querySelectorAll('img[data-plot]')].filter(i => i.naturalWidth > 0);
  document.body.dataset.plots = plots.map(i => i.dataset.plot).join(',');
});
</script></body>"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "headless Chromium is needed: bash scripts/system-packages.sh (or apt-get install chromium)"
    return path


def run_chromium(*args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=10000"]
    return subprocess.run([chromium(), *flags, *args], capture_output=True, text=True, timeout=180, check=True)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    # 12 labels: the mock's validation labels then hold two categories of at least two labels each (with 9, one)
    return train_tiny_run(tmp, loggers=[{"type": "csv"}], dataframe="df_with_category.csv", n_labels=12).run_dir


@pytest.fixture(scope="module")
def report(run_dir: Path) -> Path:
    assert main(["report", str(run_dir)]) == 0
    return run_dir / "report.html"


def test_report_is_one_self_contained_file(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for s in sources)


def test_report_parts_in_headless_chromium(report: Path, tmp_path: Path, run_dir: Path) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", CHECKER), encoding="utf-8")
    dom = run_chromium("--dump-dom", probe.as_uri()).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attributes = dict(re.findall(r'data-(\w+)="([^"]*)"', body))
    assert int(attributes["images"]) > 40 and attributes["decoded"] == attributes["images"]  # every image decoded
    assert set(attributes["plots"].split(",")) == {"history", "cmc", "fnmr-fmr", "distances", "projection"}
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    assert dom.count("<tr data-step=") == len(history) == 2  # one row per validation
    categories = re.findall(r'<tr data-category="([^"]+)"', dom)
    frame = pd.read_csv(run_dir.parent.parent / "mock" / "df_with_category.csv")
    validation_categories = set(frame.loc[frame["split"] == "validation", "category"])
    assert len(validation_categories) >= 2  # else the per-category rows show nothing OVERALL does not
    assert categories[0] == "OVERALL" and sorted(categories[1:]) == sorted(validation_categories)
    worst = re.findall(r'class="row worst-query"', dom)
    assert len(worst) == 8
    snapshot = torch.load(run_dir / "validation" / "embeddings.pt", weights_only=True)
    for block in re.findall(r'data-query="(\d+)">(.*?)(?=<div class="row worst-query"|<\/body>)', dom, re.S):
        query, html = int(block[0]), block[1]
        tiles = re.findall(r'class="thumb (query|correct|incorrect)"[^>]*>.*?#(\d+)', html, re.S)
        assert tiles[0] == ("query", str(query)) and len(tiles) == 6
        for kind, item in tiles[1:]:  # the frame says whether the result has the query's label
            same = int(snapshot["labels"][int(item)]) == int(snapshot["labels"][query])
            assert kind == ("correct" if same else "incorrect")


def test_report_screenshot_shows_the_page(report: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "report.png"
    run_chromium("--window-size=1200,2400", f"--screenshot={shot}", report.as_uri())
    with Image.open(shot) as image:
        assert image.size == (1200, 2400)
        colours = image.convert("RGB").resize((60, 120)).getcolors(60 * 120)
    assert colours is not None and len(colours) > 50  # plots and thumbnails, not a blank or error page


def test_report_numbers_agree_with_the_run_metrics(run_dir: Path) -> None:
    data = load_run_data(run_dir)
    analysis = analyse(data.snapshot, top_k=5, n_worst=8)
    last = data.history[-1]
    assert data.snapshot["step"] == last["step"]
    assert float(analysis.cmc[0]) == pytest.approx(last["OVERALL/cmc/1"], abs=1e-6)
    assert float(analysis.cmc[2]) == pytest.approx(last["OVERALL/cmc/3"], abs=1e-6)
    n_query = int(data.snapshot["is_query"].sum())
    assert len(analysis.positive_distances) + len(analysis.negative_distances) == n_query * (n_query - 1)  # all q != g
    assert torch.all(analysis.fmr[1:] >= analysis.fmr[:-1]) and torch.all(analysis.fnmr[1:] <= analysis.fnmr[:-1])
    assert analysis.projection.shape == (len(data.snapshot["labels"]), 2)
    values = [q.metric_value for q in analysis.worst]
    assert values == sorted(values)


def test_report_of_a_folder_without_a_run_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ReportError, match="nothing to report"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path / "missing")]) != 0
    err = capsys.readouterr().err
    assert "is not a run directory" in err and "Traceback" not in err
