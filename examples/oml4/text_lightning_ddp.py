# OML 4.0 docs, "Training with Lightning: DDP" (docs/readme/examples_source/extractor/train_val_pl_ddp.md), on texts.
# ruff: noqa: I001 - the imports keep the original order
# Only the imports differ from the original.
import pytorch_lightning as pl
from torch.utils.data import DataLoader
from torch.optim import Adam

import oml_text as d
from oml_lightning.pytorch_lightning import ExtractorModuleDDP
from oml_lightning.pytorch_lightning import MetricValCallback
from oml_losses import TripletLossWithMiner
from oml_core.retrieval import EmbeddingMetrics
from oml_miners import AllTripletsMiner
from oml_text import HFWrapper
from oml_samplers import BalanceSampler
from oml_text import get_mock_texts_dataset
from oml_core.retrieval import AdaptiveThresholding
from pytorch_lightning.strategies import DDPStrategy

from transformers import AutoModel, AutoTokenizer

df_train, df_val = get_mock_texts_dataset()

# model
extractor = HFWrapper(AutoModel.from_pretrained("bert-base-uncased"), 768)
tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")

# train
optimizer = Adam(extractor.parameters(), lr=1e-6)
train_dataset = d.TextLabeledDataset(df_train, tokenizer=tokenizer)
criterion = TripletLossWithMiner(margin=0.1, miner=AllTripletsMiner())
batch_sampler = BalanceSampler(train_dataset.get_labels(), n_labels=2, n_instances=3)
train_loader = DataLoader(train_dataset, batch_sampler=batch_sampler)

# val
val_dataset = d.TextQueryGalleryLabeledDataset(df_val, tokenizer=tokenizer)
val_loader = DataLoader(val_dataset, batch_size=4)
metric_callback = MetricValCallback(metric=EmbeddingMetrics(dataset=val_dataset, postprocessor=AdaptiveThresholding(n_std=3)))

# run
pl_model = ExtractorModuleDDP(extractor=extractor, criterion=criterion, optimizer=optimizer,
                              loaders_train=train_loader, loaders_val=val_loader  # DDP specific
                              )

ddp_args = {"accelerator": "cpu", "devices": 2, "strategy": DDPStrategy(), "use_distributed_sampler": False}  # DDP specific
trainer = pl.Trainer(max_epochs=1, callbacks=[metric_callback], num_sanity_val_steps=0, **ddp_args)
trainer.fit(pl_model)  # we don't pass loaders to .fit() in DDP
