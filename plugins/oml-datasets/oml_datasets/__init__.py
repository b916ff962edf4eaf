"""Datasets for OML: a glyph-identity dataset built from the installed fonts, and converters of public datasets
(CUB-200-2011, Stanford Online Products, DeepFashion InShop, Stanford Cars) to OML's 5-column format."""

__version__ = "0.1.0"
