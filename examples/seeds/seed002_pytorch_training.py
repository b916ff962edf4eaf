"""Seed 002 (an early OML README), "Minimal examples / Using pure PyTorch", the training block.

The README's block is a sketch: its ``DatasetWithLabels(...)`` placeholder has to be filled and it has typos that no
framework could run (``model.paremeters()``, ``dataset`` for ``train_dataset``, ``optmizer``). Those lines carry
``# seed edit`` with what the README says, as do the pre-release names that became OML's released ones
(``VitExtractor("pretrained_dino")`` -> ``vits16_dino`` with its ``arch``; ``BalanceBatchSampler(p=, k=)`` ->
``BalanceSampler(n_labels=, n_instances=)``). The import lines are this project's; ``VitExtractor`` and
``BalanceBatchSampler`` are imported under the README's names.
"""

from oml_losses import TripletLossWithMiner
from oml_miners import AllTripletsMiner
from oml_samplers import BalanceSampler as BalanceBatchSampler
from oml_vit import ViTExtractor as VitExtractor
from torch.optim import SGD
from torch.utils.data import DataLoader

from oml_core.data import DatasetWithLabels, download_mock_dataset

dataset_root = "mock_dataset/"  # set-up (not in the seed): where the data is
df_train, _ = download_mock_dataset(dataset_root)  # set-up (not in the seed): the mock dataset as the training data

model = VitExtractor("vits16_dino", arch="vits16")  # seed edit: VitExtractor("pretrained_dino") (pre-release zoo name)
model.train()
optimizer = SGD(model.parameters())  # seed edit: SGD(model.paremeters()) (typo)
train_dataset = DatasetWithLabels(df_train[df_train["label"] < 4], dataset_root=dataset_root)  # seed edit: DatasetWithLabels(...) (placeholder; 4 identities)
criterion = TripletLossWithMiner(margin=0.1, miner=AllTripletsMiner())
sampler = BalanceBatchSampler(labels=train_dataset.get_labels(), n_labels=4, n_instances=4)  # seed edit: (labels=dataset.get_labels(), p=4, k=4)
train_loader = DataLoader(train_dataset, batch_sampler=sampler)

for batch in train_loader:
    embeddings = model(batch["input_tensors"])
    loss = criterion(embeddings, batch["labels"])
    optimizer.zero_grad()  # seed edit: optmizer.zero_grad() (typo)
    loss.backward()
    optimizer.step()
