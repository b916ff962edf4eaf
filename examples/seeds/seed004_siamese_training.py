"""Seed 004, first block ("상위 3개를 re-ranking하여 결과에 반영하는 코드"): embed the user's dataframe, train a
ConcatSiamese on the pairs the original model struggled with, then validate with the siamese re-ranking each query's
top 3 (PairwiseImagesPostprocessor inside EmbeddingMetrics).

The import lines are this project's (the notebook imported from ``oml.*``). The ``# set-up`` lines provide what the
notebook had: ``dataset_root`` and the user's CSV of pictures (here a few identities of the mock dataset, one query
per validation identity, the rest its gallery). One line is edited (``# seed edit``): the CSV's location on the
user's Google Drive (``/content/drive/MyDrive/Colab Notebooks/OML/picture/obj123.csv``) becomes ``obj123.csv`` under
``dataset_root``.
"""

from pprint import pprint

import pandas as pd
import torch
from oml_miners import PairsMiner
from oml_samplers import BalanceSampler
from oml_siamese import ConcatSiamese, PairwiseImagesPostprocessor
from oml_vit import ViTExtractor
from torch.nn import BCEWithLogitsLoss
from torch.utils.data import DataLoader

from oml_core.data import DatasetQueryGallery, DatasetWithLabels, download_mock_dataset
from oml_core.data.transforms import get_normalisation_resize_torch
from oml_core.inference import inference_on_dataframe
from oml_core.retrieval import EmbeddingMetrics

dataset_root = "mock_dataset/"  # set-up (not in the seed): the notebook's dataset root
df = pd.concat(download_mock_dataset(dataset_root))  # set-up (not in the seed): mock images stand in for the user's pictures
df = df[df["label"].isin([0, 1, 24, 25, 26]) & (df.groupby("label").cumcount() < 4)].copy()  # set-up (not in the seed): 5 identities x 4
df["is_query"] = (~df.duplicated("label")).where(df["split"] == "validation")  # set-up (not in the seed): 1 query per identity
df["is_gallery"] = (~df["is_query"].astype(bool)).where(df["split"] == "validation")  # set-up (not in the seed): the rest is gallery
df.to_csv(dataset_root + "obj123.csv", index=False)  # set-up (not in the seed): the user's obj123.csv

extractor = ViTExtractor("vits16_dino", arch="vits16", normalise_features=False)
transform = get_normalisation_resize_torch(im_size=64)

embeddings_train, embeddings_val, df_train, df_val = \
    inference_on_dataframe(dataset_root, "obj123.csv", extractor=extractor, transforms=transform)  # seed edit: the CSV's path on the user's Drive

# We are building Siamese model on top of existing weights and train it to recognize positive/negative pairs
siamese = ConcatSiamese(extractor=extractor, mlp_hidden_dims=[100])
optimizer = torch.optim.SGD(siamese.parameters(), lr=1e-6)
miner = PairsMiner(hard_mining=True)
criterion = BCEWithLogitsLoss()

train_dataset = DatasetWithLabels(df=df_train, transform=transform, extra_data={"embeddings": embeddings_train})
batch_sampler = BalanceSampler(train_dataset.get_labels(), n_labels=2, n_instances=2)
train_loader = DataLoader(train_dataset, batch_sampler=batch_sampler)

for batch in train_loader:
    # We sample pairs on which the original model struggled most
    ids1, ids2, is_negative_pair = miner.sample(features=batch["embeddings"], labels=batch["labels"])
    probs = siamese(x1=batch["input_tensors"][ids1], x2=batch["input_tensors"][ids2])
    loss = criterion(probs, is_negative_pair.float())

    loss.backward()
    optimizer.step()
    optimizer.zero_grad()

# Siamese re-ranks top-n retrieval outputs of the original model performing inference on pairs (query, output_i)
val_dataset = DatasetQueryGallery(df=df_val, extra_data={"embeddings": embeddings_val}, transform=transform)
valid_loader = DataLoader(val_dataset, batch_size=4, shuffle=False)

postprocessor = PairwiseImagesPostprocessor(top_n=3, pairwise_model=siamese, transforms=transform)
calculator = EmbeddingMetrics(postprocessor=postprocessor)
calculator.setup(num_samples=len(val_dataset))

for batch in valid_loader:
    calculator.update_data(data_dict=batch)

pprint(calculator.compute_metrics())
