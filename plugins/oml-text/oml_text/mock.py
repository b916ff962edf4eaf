"""``get_mock_texts_dataset``: a tiny dataframe of product descriptions in OML's format, built in memory.

Seven products families (labels 0-6) in three categories; labels 0-3 are the training split, 4-6 the validation
split, where every text is both a query and a gallery item (1-vs-rest), as in OML 4.0's mock.
"""

from __future__ import annotations

import pandas as pd

from oml_text.datasets import TEXTS_COLUMN

#: (category, texts) per label
MOCK_TEXTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("furniture", (
        "Oakline king bed: solid oak frame with a padded headboard.",
        "Cloudnest twin bed: recycled pine, fits small bedrooms.",
        "Harbor queen bed: low frame with under-bed drawers.",
        "Nordic full bed: birch slats and a matte white finish.",
    )),
    ("furniture", (
        "Ironleaf dining table: tempered glass top on black steel legs, seats six.",
        "Barnwood coffee table: reclaimed planks with a lower shelf.",
        "Fold-away side table: light aluminium, folds flat for storage.",
        "Walnut writing desk: two drawers and cable holes.",
        "Round bistro table: marble top for two.",
    )),
    ("electronic", (
        "Vista 55 inch smart TV: 4K panel with built-in streaming apps.",
        "Pocket 32 inch LED TV: bright picture for the kitchen.",
        "Arc 65 inch curved TV: wide colour range and slim bezels.",
        "Basic 40 inch LCD TV: two HDMI ports and a wall mount.",
    )),
    ("food", (
        "Golden potatoes: buttery flesh, best roasted or mashed.",
        "Russet potatoes: floury, made for baking and chips.",
        "Red potatoes: waxy skin, keep their shape when boiled.",
        "Fingerling potatoes: small and nutty, grill them whole.",
        "Purple potatoes: sweet, colourful in salads.",
    )),
    ("furniture", (
        "Posture office chair: lumbar support and adjustable arms.",
        "Farmhouse dining chair: beech wood with a woven seat.",
        "Lounge recliner: three positions and thick cushions.",
        "Accent armchair: velvet cover in five colours.",
    )),
    ("electronic", (
        "Nova X phone: 6.5 inch screen and a fast processor.",
        "Pear 12 phone: aluminium body and dual cameras.",
        "Pixelate 5 phone: clean Android with a great night camera.",
        "Swift 8 phone: flagship speed at a mid-range price.",
        "Endure G phone: battery lasts two days.",
    )),
    ("electronic", (
        "Quiet Pro headphones: active noise cancelling over-ear.",
        "Sport earbuds: wireless, sweat-proof, secure fit.",
        "Studio monitor headphones: flat response for mixing.",
        "Budget wired headphones: clear sound, low price.",
        "Gaming headset: surround sound and a boom microphone.",
    )),
)
N_TRAIN_LABELS = 4


def get_mock_texts_dataset() -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(df_train, df_val)`` with columns ``text``, ``label``, ``category``, ``split``, ``is_query``, ``is_gallery``.

    Example:
        >>> df_train, df_val = get_mock_texts_dataset()
        >>> sorted(df_train["label"].unique().tolist()), bool(df_val["is_query"].all())
        ([0, 1, 2, 3], True)
    """
    rows = []
    for label, (category, texts) in enumerate(MOCK_TEXTS):
        train = label < N_TRAIN_LABELS
        for text in texts:
            rows.append({
                TEXTS_COLUMN: text,
                "label": label,
                "category": category,
                "split": "train" if train else "validation",
                "is_query": None if train else True,
                "is_gallery": None if train else True,
            })
    df = pd.DataFrame(rows)
    df_train = df[df["split"] == "train"].reset_index(drop=True)
    df_val = df[df["split"] == "validation"].reset_index(drop=True)
    return df_train, df_val


__all__ = ["MOCK_TEXTS", "get_mock_texts_dataset"]
