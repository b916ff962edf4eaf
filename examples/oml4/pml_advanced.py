# OML 4.0's docs, "Usage with PyTorch Metric Learning": PML's distance, reducer, loss and miner.
from torch.utils.data import DataLoader
from torch.optim import Adam

from oml_core.data import ImageLabeledDataset
from oml_vit import ViTExtractor
from oml_samplers import BalanceSampler
from oml_core.data import get_mock_images_dataset
from oml_core.data import get_augs_torch

from pytorch_metric_learning import losses, distances, reducers, miners

df_train, _ = get_mock_images_dataset(global_paths=True)

extractor = ViTExtractor(None, arch="vits16", normalise_features=False).train()  # set-up: random weights, not "vits16_dino"
optimizer = Adam(extractor.parameters(), lr=1e-4)
train_dataset = ImageLabeledDataset(df_train, transform=get_augs_torch(im_size=224))

# PML specific
distance = distances.LpDistance(p=2)
reducer = reducers.ThresholdReducer(low=0)
criterion = losses.TripletMarginLoss()
miner = miners.TripletMarginMiner(margin=0.2, distance=distance, type_of_triplets="all")

sampler = BalanceSampler(train_dataset.get_labels(), n_labels=2, n_instances=2)
train_loader = DataLoader(train_dataset, batch_sampler=sampler)

for batch in train_loader:
    embeddings = extractor(batch["input_tensors"])
    loss = criterion(embeddings, batch["labels"], miner(embeddings, batch["labels"]))  # PML specific
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
