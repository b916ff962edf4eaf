# OML 4.0 README, "train_val_all_modalities", TEXTS column (docs/readme/examples_source/extractor/train_val_all_modalities.md)
# ruff: noqa: I001 - the imports keep the original order
# Only the imports differ from the original.
from torch.optim import Adam
from torch.utils.data import DataLoader
from transformers import AutoModel, AutoTokenizer

import oml_text as d
from oml_core.inference import inference
from oml_losses import TripletLossWithMiner
from oml_core.retrieval import calc_retrieval_metrics_rr
from oml_miners import NHardTripletsMiner
from oml_text import HFWrapper
from oml_core.retrieval import RetrievalResults, AdaptiveThresholding
from oml_samplers import BalanceSampler
from oml_text import get_mock_texts_dataset

model = HFWrapper(AutoModel.from_pretrained("bert-base-uncased"), 768).to("cpu").train()
tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")

df_train, df_val = get_mock_texts_dataset()
train = d.TextLabeledDataset(df_train, tokenizer=tokenizer)
val = d.TextQueryGalleryLabeledDataset(df_val, tokenizer=tokenizer)

optimizer = Adam(model.parameters(), lr=1e-4)
criterion = TripletLossWithMiner(
    0.1, NHardTripletsMiner(n_positive=2, n_negative=2), need_logs=True
)
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
rr.visualize(query_ids=[2, 1], dataset=val, show=True)
print(calc_retrieval_metrics_rr(rr, map_top_k=(3,), cmc_top_k=(1,)))
