"""Pairwise re-ranking for OML: the second stage of retrieval.

Retrieve the top-n with embeddings, then re-score each (query, candidate) pair with a pairwise model::

    from oml_siamese import ConcatSiamese, PairwiseImagesPostprocessor

    siamese = ConcatSiamese(extractor=extractor, mlp_hidden_dims=[100])
    postprocessor = PairwiseImagesPostprocessor(top_n=3, pairwise_model=siamese, transforms=transform)
    distances_upd = postprocessor.process(distances=distances, queries=query_paths, galleries=gallery_paths)
    calculator = EmbeddingMetrics(postprocessor=postprocessor)     # or inside validation
"""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) does not import torch
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ImagesFromDataset": "oml_siamese.inference",
        "ImagesFromPaths": "oml_siamese.inference",
        "pairwise_inference": "oml_siamese.inference",
        "ConcatSiamese": "oml_siamese.models",
        "LinearSiamese": "oml_siamese.models",
        "LinearTrivialDistanceSiamese": "oml_siamese.models",
        "TrivialDistanceSiamese": "oml_siamese.models",
        "elementwise_dist": "oml_siamese.models",
        "PairwiseEmbeddingsPostprocessor": "oml_siamese.postprocessors",
        "PairwiseImagesPostprocessor": "oml_siamese.postprocessors",
        "PairwisePostprocessor": "oml_siamese.postprocessors",
        "PairwiseReranker": "oml_siamese.postprocessors",
        "rerank_distance_matrix": "oml_siamese.rerank",
        "rerank_top_n": "oml_siamese.rerank",
    },
)

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
