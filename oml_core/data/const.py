"""Names of OML's dataframe columns and of the keys of the items (and batches) that the datasets yield.

The dataframe format, one row per image::

    label   path              split       is_query  is_gallery  [category] [sequence] [x_1 y_1 x_2 y_2]
    0       images/a/0.png    train
    7       images/h/2.png    validation  True      True

Example:
    >>> LABELS_COLUMN, PATHS_COLUMN, BBOXES_COLUMNS
    ('label', 'path', ('x_1', 'y_1', 'x_2', 'y_2'))
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------- columns
LABELS_COLUMN = "label"
PATHS_COLUMN = "path"
SPLIT_COLUMN = "split"
IS_QUERY_COLUMN = "is_query"
IS_GALLERY_COLUMN = "is_gallery"
CATEGORIES_COLUMN = "category"
SEQUENCE_COLUMN = "sequence"
X1_COLUMN = "x_1"
Y1_COLUMN = "y_1"
X2_COLUMN = "x_2"
Y2_COLUMN = "y_2"

BBOXES_COLUMNS: tuple[str, str, str, str] = (X1_COLUMN, Y1_COLUMN, X2_COLUMN, Y2_COLUMN)
#: Also accepted for the box columns (renamed on reading); OML 4.0 spells them with an underscore.
BBOX_COLUMN_ALIASES: dict[str, str] = {"x1": X1_COLUMN, "y1": Y1_COLUMN, "x2": X2_COLUMN, "y2": Y2_COLUMN}
REQUIRED_COLUMNS: tuple[str, ...] = (LABELS_COLUMN, PATHS_COLUMN, SPLIT_COLUMN)
QUERY_GALLERY_COLUMNS: tuple[str, str] = (IS_QUERY_COLUMN, IS_GALLERY_COLUMN)
OPTIONAL_COLUMNS: tuple[str, ...] = (CATEGORIES_COLUMN, SEQUENCE_COLUMN, *BBOXES_COLUMNS)
KNOWN_COLUMNS: tuple[str, ...] = (*REQUIRED_COLUMNS, *QUERY_GALLERY_COLUMNS, *OPTIONAL_COLUMNS)

TRAIN_SPLIT = "train"
VALIDATION_SPLIT = "validation"
SPLITS: tuple[str, str] = (TRAIN_SPLIT, VALIDATION_SPLIT)

# ---------------------------------------------------------------------------------------------- item keys
INPUT_TENSORS_KEY = "input_tensors"
LABELS_KEY = "labels"
INDEX_KEY = "idx"
PATHS_KEY = "paths"
CATEGORIES_KEY = "categories"
SEQUENCE_KEY = "sequence"
IS_QUERY_KEY = "is_query"
IS_GALLERY_KEY = "is_gallery"
EMBEDDINGS_KEY = "embeddings"
X1_KEY = "x1"
Y1_KEY = "y1"
X2_KEY = "x2"
Y2_KEY = "y2"
BBOXES_KEYS: tuple[str, str, str, str] = (X1_KEY, Y1_KEY, X2_KEY, Y2_KEY)

# ---------------------------------------------------------------------------------------------- images
#: ImageNet statistics, the default of the normalising transforms.
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Colour of the background that transparent images are put on when read as RGB.
PAD_COLOR: tuple[int, int, int] = (255, 255, 255)

#: CLIP's normalisation statistics (OpenAI CLIP, ruCLIP and Unicom preprocessing)
MEAN_CLIP: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
STD_CLIP: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
