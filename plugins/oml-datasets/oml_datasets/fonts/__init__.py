"""The fonts dataset: glyph identities rendered from the installed fonts (``oml datasets fonts OUT_DIR``)."""

from oml_datasets.fonts.builder import (
    DEFAULT_CHARACTERS,
    MANIFEST_NAME,
    FontsDatasetParams,
    FontsDatasetReport,
    build_fonts_dataset,
)

__all__ = ["DEFAULT_CHARACTERS", "MANIFEST_NAME", "FontsDatasetParams", "FontsDatasetReport", "build_fonts_dataset"]
