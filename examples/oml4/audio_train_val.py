# OML 4.0 README, "train_val_all_modalities", AUDIOS column (docs/readme/examples_source/extractor/train_val_all_modalities.md)
# ruff: noqa: I001 - the imports keep the original order
# Only the imports differ from the original.
from torch.optim import Adam
from torch.utils.data import DataLoader

import oml_audio as d
from oml_core.inference import inference
from oml_losses import ArcFaceLoss
from oml_core.retrieval import calc_retrieval_metrics_rr
from oml_audio import ECAPATDNNExtractor
from oml_core.retrieval import AdaptiveThresholding, RetrievalResults
from oml_samplers import BalanceSampler
from oml_audio import get_mock_audios_dataset

model = ECAPATDNNExtractor.from_pretrained("ecapa_tdnn_taoruijie").to("cpu").train()

df_train, df_val = get_mock_audios_dataset(global_paths=True)
train = d.AudioLabeledDataset(df_train)
val = d.AudioQueryGalleryLabeledDataset(df_val)

optimizer = Adam(model.parameters(), lr=1e-4)
criterion = ArcFaceLoss(m=0.2, s=30, in_features=192, num_classes=4)  # similar to paper
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
rr.visualize_as_html(query_ids=[2, 1], dataset=val, show=True)
print(calc_retrieval_metrics_rr(rr, map_top_k=(3,), cmc_top_k=(1,)))
