# OML 4.0's README, "Examples" (IMAGES): training, validation and post-processing on the mock dataset.
from torch.optim import Adam
from torch.utils.data import DataLoader

import oml_core.data as d
from oml_core.inference import inference
from oml_losses import TripletLossWithMiner
from oml_core.retrieval import calc_retrieval_metrics_rr
from oml_miners import HardTripletsMiner
from oml_vit import ViTExtractor
from oml_core.weights import get_transforms_for_pretrained
from oml_core.retrieval import RetrievalResults, AdaptiveThresholding
from oml_samplers import BalanceSampler
from oml_core.data import get_mock_images_dataset

model = ViTExtractor(None, arch="vits16", normalise_features=False).to("cpu").train()  # set-up: random weights, not from_pretrained("vits16_dino")
transform, _ = get_transforms_for_pretrained("vits16_dino")

df_train, df_val = get_mock_images_dataset(global_paths=True)
train = d.ImageLabeledDataset(df_train, transform=transform)
val = d.ImageQueryGalleryLabeledDataset(df_val, transform=transform)

optimizer = Adam(model.parameters(), lr=1e-4)
criterion = TripletLossWithMiner(0.1, HardTripletsMiner(), need_logs=True)
sampler = BalanceSampler(train.get_labels(), n_labels=2, n_instances=2)


# training 1 epoch
for batch in DataLoader(train, batch_sampler=sampler):
    embeddings = model(batch["input_tensors"])
    loss = criterion(embeddings, batch["labels"])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    print(criterion.last_logs)


# validation by retrieving relevant items
embeddings = inference(model, val, batch_size=4, num_workers=0)
rr = RetrievalResults.from_embeddings(embeddings, val, n_items=3)
rr = AdaptiveThresholding(n_std=2).process(rr)
rr.visualize(query_ids=[2, 1], dataset=val)  # set-up: no show=True
print(calc_retrieval_metrics_rr(rr, map_top_k=(3,), cmc_top_k=(1,)))
