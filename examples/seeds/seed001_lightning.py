"""Seed 001, parts 01 and 02: training with PyTorch Lightning and validating every epoch (방법 01 / 방법 02), then saving
a checkpoint and loading its state_dict back. Only the import lines are changed.

The notebook defined the model, criterion, optimizer, loaders and logger earlier (off the page, as in seed 000); the
``# set-up`` lines provide them. 방법 02 defines the ``metric_callback`` that 방법 01 passes to the trainer, so it
runs first ("결과: 방법 01과 동일" -- the result is the same as 방법 01). The import lines are this project's (the
notebook imported from ``oml.*``; ``import pytorch_lightning as pl`` stays, with ``oml_lightning.pytorch_lightning``).
"""

import pytorch_lightning as pl
import torch
from oml_lightning.pytorch_lightning import ExtractorModule, MetricValCallback
from oml_losses import TripletLossWithMiner
from oml_miners import AllTripletsMiner
from oml_samplers import BalanceSampler
from oml_vit import ViTExtractor
from pytorch_lightning.loggers import CSVLogger

from oml_core.data import DatasetQueryGallery, DatasetWithLabels, download_mock_dataset
from oml_core.retrieval import EmbeddingMetrics

dataset_root = "mock_dataset/"  # set-up (not in the seed): seed 000's dataset root
df_train, df_val = download_mock_dataset(dataset_root)  # set-up (not in the seed): seed 000's mock dataset
df_train = df_train[df_train["label"] < 2]  # set-up (not in the seed): 2 identities (1 batch), so 5 epochs of ViT-S take seconds
df_val = df_val[(df_val["label"] < df_val["label"].min() + 2) & (df_val.groupby("label").cumcount() < 2)]  # set-up (not in the seed): 2 x 2 images
model = ViTExtractor("vits16_dino", arch="vits16", normalise_features=False).train()  # set-up (not in the seed): seed 000
optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)  # set-up (not in the seed): seed 000
train_dataset = DatasetWithLabels(df_train, dataset_root=dataset_root)  # set-up (not in the seed): seed 000
criterion = TripletLossWithMiner(margin=0.1, miner=AllTripletsMiner(), need_logs=True)  # set-up (not in the seed): seed 000
sampler = BalanceSampler(train_dataset.get_labels(), n_labels=2, n_instances=2)  # set-up (not in the seed): seed 000
train_loader = torch.utils.data.DataLoader(train_dataset, batch_sampler=sampler)  # set-up (not in the seed): seed 000
val_dataset = DatasetQueryGallery(df_val, dataset_root=dataset_root)  # set-up (not in the seed): the validation set
val_loader = torch.utils.data.DataLoader(val_dataset, batch_size=16)  # set-up (not in the seed): the validation loader
logger = CSVLogger("logs")  # set-up (not in the seed): the notebook's logger


# 방법 02
class CustomMetricValCallback(MetricValCallback):
    def __init__(self, *args, log_metrics_every_epoch=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_metrics_every_epoch = log_metrics_every_epoch

    def on_epoch_end(self, trainer, pl_module):
        if self.log_metrics_every_epoch:
            super().on_epoch_end(trainer, pl_module)
        else:
            # 에포크마다 결과를 구별하여 출력
            print(f"Metrics for epoch {trainer.current_epoch}:")
            for key, value in self.metric_result.items():
                print(f"{key}: {value}")
# (생략)
# val 설정
metric_callback = CustomMetricValCallback(metric=EmbeddingMetrics(extra_keys=["paths"]), log_images=True)

# 방법 01
pl_model = ExtractorModule(model, criterion, optimizer)
trainer = pl.Trainer(max_epochs=5, callbacks=[metric_callback], num_sanity_val_steps=0, logger=logger, check_val_every_n_epoch=1)
trainer.fit(pl_model, train_dataloaders=train_loader, val_dataloaders=val_loader)

# 모델 저장
checkpoint_path = "trained_model.ckpt"
trainer.save_checkpoint(checkpoint_path)
# trainer.save_checkpoint("trained_model.ckpt")

# (생략)
import torch
import pytorch_lightning as pl
from oml_lightning.pytorch_lightning import ExtractorModule
from oml_vit import ViTExtractor

# 저장된 체크포인트 경로
checkpoint_path = "trained_model.ckpt"

# 저장된 체크포인트 불러오기
checkpoint = torch.load(checkpoint_path)

# 모델에 체크포인트 로드
pl_model.load_state_dict(checkpoint['state_dict'])
