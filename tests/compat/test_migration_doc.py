"""docs/migration.md: every name its import tables list (the "import here" column) can be imported, and the tables
cover OML 4.0's public image names."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "migration.md"
IMPORT = re.compile(r"`(?:import (?P<module>[\w.]+)(?: as \w+)?|from (?P<source>[\w.]+) import (?P<names>[^`]+))`")
#: OML 4.0's public image names (oml.datasets, models, losses, miners, samplers, metrics, retrieval, inference, the
#: image mock dataset and get_transforms_for_pretrained); text/audio ones belong to oml-text / oml-audio, the CLIP and
#: Unicom extractors to the zoo's plugins
OML4_IMAGE_NAMES = """
ImageBaseDataset ImageLabeledDataset ImageQueryGalleryDataset ImageQueryGalleryLabeledDataset PairDataset
ExtractorWithMLP ConcatSiamese LinearTrivialDistanceSiamese TrivialDistanceSiamese ResnetExtractor ViTExtractor
ArcFaceLoss ArcFaceLossWithMLP SurrogatePrecision TripletLoss TripletLossPlain TripletLossWithMiner
TripletMinerWithMemory AllTripletsMiner get_available_triplets HardClusterMiner HardTripletsMiner NHardTripletsMiner
MinerWithBank PairsMiner BalanceSampler CategoryBalanceSampler DistinctCategoryBalanceSampler
calc_topological_metrics EmbeddingMetrics calc_fnmr_at_fmr_rr calc_retrieval_metrics_rr
AdaptiveThresholding ConstantThresholding PairwiseReranker RetrievalResults inference inference_cached pairwise_inference
get_mock_images_dataset get_transforms_for_pretrained check_retrieval_dataframe_format CKPT_SAVE_ROOT PCA
IExtractor IPairwiseModel IFreezable
""".split()


def _rows() -> list[tuple[str, str]]:
    """(OML's column, this project's column) of every import table row."""
    rows = []
    for line in PAGE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`") and ("import" in cells[1]):
            rows.append((cells[0], cells[1]))
    return rows


def _imports(cell: str) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for match in IMPORT.finditer(cell):
        if match.group("module"):
            found.append((match.group("module"), None))
            continue
        names = match.group("names").replace("...", "").split(",")
        found += [(match.group("source"), n.strip().split(" as ")[0]) for n in names if n.strip()]
    return found


def test_the_page_covers_2x_3x_and_4x() -> None:
    text = PAGE.read_text()
    assert text.startswith("# Migrating from OML 2.x, 3.x and 4.x")
    assert "## OML 4.x" in text and len(_rows()) >= 50


@pytest.mark.parametrize("row", _rows(), ids=lambda row: row[1][:60])
def test_every_listed_import_works(row: tuple[str, str]) -> None:
    imports = _imports(row[1])
    assert imports, f"no import in {row[1]!r}"
    for module, name in imports:
        if module == "lightning.pytorch" or module.startswith("pytorch_lightning"):
            continue  # Lightning itself, not this project
        loaded = importlib.import_module(module)
        if name is not None:
            assert hasattr(loaded, name), f"{module} has no {name} (docs/migration.md: {row[1]})"


def test_every_oml4_image_name_is_in_the_tables() -> None:
    listed = {name for _, ours in _rows() for _, name in _imports(ours) if name}
    missing = [name for name in OML4_IMAGE_NAMES if name not in listed]
    assert not missing, f"OML 4.0 names missing from docs/migration.md: {missing}"
