"""Seed 004, second block ("모델에 반영하는 코드"): the original model's top-3 predictions from a distance matrix,
then the same predictions after a (random) ConcatSiamese re-ranks each query's top 3 with
``postprocessor.process(distances=..., queries=..., galleries=...)``.

The import lines are this project's (the notebook imported from ``oml.*``; the block's own imports stay where they
are, with their new modules). The ``# set-up`` lines provide ``dataset_root`` and the user's CSV (a few identities
of the mock dataset, as in ``seed004_siamese_training.py``). One line is edited (``# seed edit``): the CSV's location
on the user's Google Drive becomes ``obj123.csv`` under ``dataset_root``.
"""

import pandas as pd
import torch
from oml_siamese import ConcatSiamese
from oml_vit import ViTExtractor
from torch.utils.data import DataLoader

from oml_core.data import DatasetQueryGallery, download_mock_dataset
from oml_core.inference import inference_on_dataframe

dataset_root = "mock_dataset/"  # set-up (not in the seed): the notebook's dataset root
df = pd.concat(download_mock_dataset(dataset_root))  # set-up (not in the seed): mock images stand in for the user's pictures
df = df[df["label"].isin([0, 1, 24, 25, 26]) & (df.groupby("label").cumcount() < 4)].copy()  # set-up (not in the seed): 5 identities x 4
df["is_query"] = (~df.duplicated("label")).where(df["split"] == "validation")  # set-up (not in the seed): 1 query per identity
df["is_gallery"] = (~df["is_query"].astype(bool)).where(df["split"] == "validation")  # set-up (not in the seed): the rest is gallery
df.to_csv(dataset_root + "obj123.csv", index=False)  # set-up (not in the seed): the user's obj123.csv

from oml_core.data import PATHS_COLUMN
from oml_core.weights import get_transforms_for_pretrained
from oml_siamese import PairwiseImagesPostprocessor
from oml_core.retrieval import pairwise_dist

# 1. Let's use feature extractor to get predictions
extractor = ViTExtractor.from_pretrained("vits16_dino")
transforms, _ = get_transforms_for_pretrained("vits16_dino")

_, emb_val, _, df_val = inference_on_dataframe(dataset_root, "obj123.csv", extractor, transforms=transforms)  # seed edit: the CSV's path on the user's Drive

is_query = df_val["is_query"].astype('bool').values
distances = pairwise_dist(x1=emb_val[is_query], x2=emb_val[~is_query])

print("\nOriginal predictions:\n", torch.topk(distances, dim=1, k=3, largest=False)[1])

# 2. Let's initialise a random pairwise postprocessor to perform re-ranking
siamese = ConcatSiamese(extractor=extractor, mlp_hidden_dims=[100])  # Note! Replace it with your trained postprocessor
postprocessor = PairwiseImagesPostprocessor(top_n=3, pairwise_model=siamese, transforms=transforms)

dataset = DatasetQueryGallery(df_val, extra_data={"embeddings": emb_val}, transform=transforms)
loader = DataLoader(dataset, batch_size=4)

query_paths = df_val[PATHS_COLUMN][is_query].values
gallery_paths = df_val[PATHS_COLUMN][~is_query].values
distances_upd = postprocessor.process(distances=distances, queries=query_paths, galleries=gallery_paths)

print("\nPredictions after postprocessing:\n", torch.topk(distances_upd, dim=1, k=3, largest=False)[1])
