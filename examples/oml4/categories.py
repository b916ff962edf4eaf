# OML 4.0's docs, "Handling categories": category-aware sampling and per-category metrics.
from pprint import pprint

import numpy as np
from torch.optim import Adam
from torch.utils.data import DataLoader

import oml_core.data as d
from oml_core.inference import inference
from oml_losses import TripletLossWithMiner
from oml_core.retrieval import calc_retrieval_metrics_rr
from oml_miners import AllTripletsMiner
from oml_vit import ViTExtractor
from oml_core.retrieval import RetrievalResults
from oml_samplers import DistinctCategoryBalanceSampler, CategoryBalanceSampler
from oml_core.data import get_mock_images_dataset
from oml_core.weights import get_transforms_for_pretrained

model = ViTExtractor(None, arch="vits16", normalise_features=False).to("cpu")  # set-up: random weights, not from_pretrained("vits16_dino")
transforms, _ = get_transforms_for_pretrained("vits16_dino")

df_train, df_val = get_mock_images_dataset(df_name="df_with_category.csv", global_paths=True)
train = d.ImageLabeledDataset(df_train, transform=transforms)
val = d.ImageQueryGalleryLabeledDataset(df_val, transform=transforms)

optimizer = Adam(model.parameters(), lr=1e-4)
criterion = TripletLossWithMiner(0.1, AllTripletsMiner(), need_logs=True)

# >>>>> You can use one of category aware samplers
args = {"n_categories": 2, "n_labels": 2, "n_instances": 2, "label2category": train.get_label2category(), "labels": train.get_labels()}
sampler = DistinctCategoryBalanceSampler(epoch_size=5, **args)
# sampler = CategoryBalanceSampler(resample_labels=False, weight_categories=True, **args)  # a bit different sampling


def training():
    for batch in DataLoader(train, batch_sampler=sampler):
        embeddings = model(batch["input_tensors"])
        loss = criterion(embeddings, batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        pprint(criterion.last_logs)


def validation():
    embeddings = inference(model, val, batch_size=4, num_workers=0)
    rr = RetrievalResults.from_embeddings(embeddings, val, n_items=3)
    rr.visualize(query_ids=[2, 1], dataset=val)  # set-up: no show=True

    # >>>> When query categories are known we may get fine-grained metrics
    query_categories = np.array(val.extra_data["category"])[val.get_query_ids()]
    pprint(calc_retrieval_metrics_rr(rr, query_categories=query_categories, map_top_k=(3,), cmc_top_k=(1,)))


training()
validation()
