# OML 4.0's docs, "Usage with PyTorch Metric Learning": a PML loss on this project's dataset and sampler.
from torch.optim import Adam
from torch.utils.data import DataLoader

from oml_core.data import ImageLabeledDataset
from oml_vit import ViTExtractor
from oml_samplers import BalanceSampler
from oml_core.data import get_mock_images_dataset

from pytorch_metric_learning import losses

df_train, _ = get_mock_images_dataset(global_paths=True)

extractor = ViTExtractor(None, arch="vits16", normalise_features=False).train()  # set-up: random weights, not "vits16_dino"
optimizer = Adam(extractor.parameters(), lr=1e-4)

train_dataset = ImageLabeledDataset(df_train)

# PML specific
# criterion = losses.TripletMarginLoss(margin=0.2, triplets_per_anchor="all")
criterion = losses.ArcFaceLoss(num_classes=df_train["label"].nunique(), embedding_size=extractor.feat_dim)  # for classification-like losses

sampler = BalanceSampler(train_dataset.get_labels(), n_labels=2, n_instances=2)
train_loader = DataLoader(train_dataset, batch_sampler=sampler)

for batch in train_loader:
    embeddings = extractor(batch["input_tensors"])
    loss = criterion(embeddings, batch["labels"])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
