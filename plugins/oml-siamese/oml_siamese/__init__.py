"""Pairwise re-ranking for OML: the second stage of retrieval.

Retrieve the top-n with embeddings, then re-score each (query, candidate) pair with a pairwise model::

    from oml_siamese import ConcatSiamese, PairwiseImagesPostprocessor

    siamese = ConcatSiamese(extractor=extractor, mlp_hidden_dims=[100])
    postprocessor = PairwiseImagesPostprocessor(top_n=3, pairwise_model=siamese, transforms=transform)
    distances_upd = postprocessor.process(distances=distances, queries=query_paths, galleries=gallery_paths)
    calculator = EmbeddingMetrics(postprocessor=postprocessor)     # or inside validation
"""

from oml_siamese.inference import ImagesFromDataset, ImagesFromPaths, pairwise_inference
from oml_siamese.models import (
    ConcatSiamese,
    LinearSiamese,
    LinearTrivialDistanceSiamese,
    TrivialDistanceSiamese,
    elementwise_dist,
)
from oml_siamese.postprocessors import (
    PairwiseEmbeddingsPostprocessor,
    PairwiseImagesPostprocessor,
    PairwisePostprocessor,
    PairwiseReranker,
)
from oml_siamese.rerank import rerank_distance_matrix, rerank_top_n

__all__ = [
    "ConcatSiamese",
    "ImagesFromDataset",
    "ImagesFromPaths",
    "LinearSiamese",
    "LinearTrivialDistanceSiamese",
    "PairwiseEmbeddingsPostprocessor",
    "PairwiseImagesPostprocessor",
    "PairwisePostprocessor",
    "PairwiseReranker",
    "TrivialDistanceSiamese",
    "elementwise_dist",
    "pairwise_inference",
    "rerank_distance_matrix",
    "rerank_top_n",
]
