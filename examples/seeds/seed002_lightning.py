"""Seed 002 (an early OML README), "Minimal examples / Using PyTorch Lightning".

As in ``seed002_pytorch_training.py``: the ``...`` placeholders are filled, the README's typos fixed and the
pre-release names mapped to OML's released ones, each line marked ``# seed edit`` (``ResnetExtractor("pretrained_moco")``
-> ``resnet50_moco_v2`` with its ``arch``; ``BalanceBatchSampler(p=, k=)`` -> ``n_labels=, n_instances=``). The import
lines are this project's; ``RetrievalModule`` (the pre-release name of ``ExtractorModule``) and
``BalanceBatchSampler`` are imported under the README's names. ``pl.Trainer(callbacks=[...])`` trains for
Lightning's default 1000 epochs: the set-up line sets Lightning's own ``PL_TRAINER_MAX_EPOCHS`` default to 1.
"""

import os

import pytorch_lightning as pl
from oml_lightning.pytorch_lightning import ExtractorModule as RetrievalModule
from oml_lightning.pytorch_lightning import MetricValCallback
from oml_losses import TripletLossWithMiner
from oml_miners import AllTripletsMiner
from oml_resnet import ResnetExtractor
from oml_samplers import BalanceSampler as BalanceBatchSampler
from torch.optim import SGD
from torch.utils.data import DataLoader

from oml_core.data import DatasetQueryGallery, DatasetWithLabels, download_mock_dataset
from oml_core.retrieval import EmbeddingMetrics

os.environ.setdefault("PL_TRAINER_MAX_EPOCHS", "1")  # set-up (not in the seed): one epoch, not Lightning's default 1000
dataset_root = "mock_dataset/"  # set-up (not in the seed): where the data is
df_train, df_val = download_mock_dataset(dataset_root)  # set-up (not in the seed): the mock dataset

model = ResnetExtractor("resnet50_moco_v2", arch="resnet50")  # seed edit: ResnetExtractor("pretrained_moco") (pre-release zoo name)

# train
optimizer = SGD(model.parameters())  # seed edit: SGD(model.paremeters()) (typo)
train_dataset = DatasetWithLabels(df_train[df_train["label"] < 4], dataset_root=dataset_root)  # seed edit: DatasetWithLabels(...) (placeholder; 4 identities)
criterion = TripletLossWithMiner(margin=0.1, miner=AllTripletsMiner())
sampler = BalanceBatchSampler(labels=train_dataset.get_labels(), n_labels=4, n_instances=4)  # seed edit: (labels=dataset.get_labels(), p=4, k=4)
train_loader = DataLoader(train_dataset, batch_sampler=sampler)

# val
val_dataset = DatasetQueryGallery(df_val[df_val["label"] < df_val["label"].min() + 3][::2], dataset_root=dataset_root)  # seed edit: DatasetQueryGallery(...) (placeholder; 3 identities x 4)
val_loader = DataLoader(val_dataset)
metric_callback = MetricValCallback(EmbeddingMetrics())

# run
pl_model = RetrievalModule(model, criterion, optimizer)
trainer = pl.Trainer(callbacks=[metric_callback])
trainer.fit(pl_model, train_loader, val_loader)
