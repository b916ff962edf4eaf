"""Seed 000 (study_oml, "Training"): every code block of the document, in its order, with only the imports changed.

The blocks share their variables (a notebook), so they are one script. Bare expressions such as ``df_train.head()``
or ``model`` were cell outputs in the notebook; in a script they are evaluated and discarded. The import lines are
this project's (the notebook imported from ``oml.*``); everything after them is the seed's code.
"""

import torch
from oml_losses import TripletLossWithMiner
from oml_miners import AllTripletsMiner
from oml_samplers import BalanceSampler
from oml_vit import ViTExtractor
from tqdm import tqdm

from oml_core.data import DatasetWithLabels, download_mock_dataset

dataset_root = "mock_dataset/"
df_train, _ = download_mock_dataset(dataset_root)
df_train.head()

# https://open-metric-learning.readthedocs.io/en/latest/contents/models.html#vitextractor
# 03
model = ViTExtractor("vits16_dino", arch="vits16", normalise_features=False).train()
model

# https://pytorch.org/docs/stable/generated/torch.optim.SGD.html
# 05
optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
optimizer

# https://open-metric-learning.readthedocs.io/en/latest/contents/datasets.html#datasetwithlabels
# 01
train_dataset = DatasetWithLabels(df_train, dataset_root=dataset_root)
train_dataset.df

# https://open-metric-learning.readthedocs.io/en/latest/contents/losses.html#tripletlosswithminer
# 04
criterion = TripletLossWithMiner(margin=0.1, miner=AllTripletsMiner(), need_logs=True)
criterion

# https://open-metric-learning.readthedocs.io/en/latest/contents/samplers.html#balancesampler
# 02-01
sampler = BalanceSampler(train_dataset.get_labels(), n_labels=2, n_instances=2)
print(sampler.lbl2idx)
print(sampler.batch_size)

# https://pytorch.org/docs/stable/data.html#torch.utils.data.DataLoader
# 02-02
train_loader = torch.utils.data.DataLoader(train_dataset, batch_sampler=sampler)
train_loader

for batch in tqdm(train_loader):
    embeddings = model(batch["input_tensors"])
    loss = criterion(embeddings, batch["labels"])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()

    # info for logging: positive/negative distances, number of active triplets
    print(criterion.last_logs)
