"""Built-in plugin: registers the core's retrieval postprocessors (query expansion, distance thresholding)."""

from __future__ import annotations

from typing import Any

from oml_core._markers import hookimpl
from oml_core.registry import Registry


@hookimpl
def oml_register_postprocessors(registry: Registry[Any]) -> None:
    from oml_core.retrieval.postprocessors import (
        AlphaQueryExpansion,
        AlphaQueryExpansionConfig,
        AverageQueryExpansion,
        DistanceThreshold,
        DistanceThresholdConfig,
        QueryExpansionConfig,
    )

    registry.add(
        "query_expansion",
        config=QueryExpansionConfig,
        factory=AverageQueryExpansion,
        summary="average query expansion: the query averaged with its top_n nearest gallery items, searched again",
        example={"top_n": 2},
    )
    registry.add(
        "alpha_query_expansion",
        config=AlphaQueryExpansionConfig,
        factory=AlphaQueryExpansion,
        summary="alpha query expansion: top_n neighbours weighted by max(cos, 0) ** alpha, searched again",
        example={"top_n": 2, "alpha": 3.0},
    )
    registry.add(
        "distance_threshold",
        config=DistanceThresholdConfig,
        factory=DistanceThreshold,
        summary="drop retrieved items farther than threshold from the query",
        example={"threshold": 2.0},
    )
