"""Seed 002 (an early OML README), "Minimal examples / Using pure PyTorch", the validation block.

As in ``seed002_pytorch_training.py``: the ``DatasetQueryGallery(...)`` placeholder is filled, the README's typo
(``caclulator`` is later called ``calc``) is fixed and the pre-release zoo name mapped, each line marked
``# seed edit``. The import lines are this project's; ``VitExtractor`` is imported under the README's name.
"""

import torch
from oml_vit import ViTExtractor as VitExtractor
from torch.utils.data import DataLoader

from oml_core.data import DatasetQueryGallery, download_mock_dataset
from oml_core.retrieval import EmbeddingMetrics

dataset_root = "mock_dataset/"  # set-up (not in the seed): where the data is
_, df_val = download_mock_dataset(dataset_root)  # set-up (not in the seed): the mock dataset as the validation data

model = VitExtractor("vits16_dino", arch="vits16")  # seed edit: VitExtractor("pretrained_dino") (pre-release zoo name)
model.eval()
val_dataset = DatasetQueryGallery(df_val[df_val["label"] < df_val["label"].min() + 3][::2], dataset_root=dataset_root)  # seed edit: DatasetQueryGallery(...) (placeholder; 3 identities x 4)
val_loader = DataLoader(val_dataset)
caclulator = EmbeddingMetrics()
caclulator.setup()

with torch.no_grad():
    for batch in val_loader:
        batch["embeddings"] = model(batch["input_tensors"])
        caclulator.update_data(data_dict=batch)  # seed edit: calc.update_data(data_dict=batch) (typo)

metrics = caclulator.compute_metrics()  # seed edit: calc.compute_metrics() (typo)
