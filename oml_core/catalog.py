"""Which distribution provides each well-known component, so that an unknown name can say what to install.

Kept by hand: a component of a plugin that is not installed cannot tell us its name.
"""

from __future__ import annotations

KNOWN_COMPONENTS: dict[str, dict[str, str]] = {
    "extractors": {"vit": "oml-vit", "resnet": "oml-resnet"},
    "pairwise_models": {
        "concat_siamese": "oml-siamese",
        "linear_siamese": "oml-siamese",
        "trivial_distance_siamese": "oml-siamese",
    },
    "losses": {
        "triplet_with_miner": "oml-losses",
        "arcface": "oml-losses",
        "mlp_arcface": "oml-losses",
        "contrastive": "oml-losses",
        "surrogate_precision": "oml-losses",
    },
    "miners": {
        "all_triplets": "oml-miners",
        "hard_triplets": "oml-miners",
        "n_hard_triplets": "oml-miners",
        "hard_cluster": "oml-miners",
        "triplets_with_memory": "oml-miners",
        "pairs": "oml-miners",
    },
    "samplers": {
        "balance": "oml-samplers",
        "category_balance": "oml-samplers",
        "distinct_category_balance": "oml-samplers",
    },
    "postprocessors": {"pairwise_images": "oml-siamese", "pairwise_embeddings": "oml-siamese"},
    "stores": {"sql": "oml-store-sql", "faiss": "oml-store-faiss"},
}

#: Hints only, for errors when no installed store opens a URL: what each well-known store plugin opens. Opening
#: never uses this table; installed stores declare their URLs themselves (``oml_core.stores.StoreLocator``).
KNOWN_STORE_URLS: dict[str, tuple[str, str]] = {
    "sql": ("sqlite:///PATH.db, PATH.db, postgresql://USER@HOST/DB", "oml-store-sql"),
    "faiss": ("faiss:///DIR, an existing FAISS store folder", "oml-store-faiss"),
}


def distribution_for(kind: str, name: str) -> str | None:
    """Return the distribution that provides component ``name`` of ``kind``, if it is a known one.

    Example:
        >>> distribution_for("extractors", "vit")
        'oml-vit'
    """
    return KNOWN_COMPONENTS.get(kind, {}).get(name)
