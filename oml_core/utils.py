"""Small tensor helpers under the names OML's users call (``from oml.utils.misc_torch import pairwise_dist``);
they are those of ``oml_core.distances``."""

from __future__ import annotations

from oml_core.distances import elementwise_dist, normalise, pairwise_dist

__all__ = ["elementwise_dist", "normalise", "pairwise_dist"]
