# OML 4.0 README, "Zoo: texts" (docs/readme/examples_source/zoo/zoo_texts.md). Only the imports differ.
# ruff: noqa: I001 - the imports keep the original order
from transformers import AutoModel, AutoTokenizer

from oml_text import HFWrapper

model = AutoModel.from_pretrained('bert-base-uncased').eval()
tokenizer = AutoTokenizer.from_pretrained('bert-base-uncased')
extractor = HFWrapper(model=model, feat_dim=768)

inp = tokenizer(text="Hello world", return_tensors="pt", add_special_tokens=True)
embeddings = extractor(inp)
