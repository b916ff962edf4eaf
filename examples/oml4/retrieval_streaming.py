# OML 4.0's README, "Retrieval by trained model: streaming & txt2im": a fixed gallery, queries arriving in batches.
import pandas as pd

from oml_core.data import ImageBaseDataset
from oml_core.inference import inference
from oml_vit import ViTExtractor
from oml_core.weights import get_transforms_for_pretrained
from oml_core.retrieval import RetrievalResults, ConstantThresholding
from oml_core.data import get_mock_images_dataset

extractor = ViTExtractor(None, arch="vits16", normalise_features=False).to("cpu")  # set-up: random weights, not from_pretrained("vits16_dino")
transform, _ = get_transforms_for_pretrained("vits16_dino")

paths = pd.concat(get_mock_images_dataset(global_paths=True))["path"]
galleries, queries1, queries2 = paths[:20], paths[20:22], paths[22:24]

# gallery is huge and fixed, so we only process it once
dataset_gallery = ImageBaseDataset(galleries, transform=transform)
embeddings_gallery = inference(extractor, dataset_gallery, batch_size=4, num_workers=0)

# queries come "online" in stream
for queries in [queries1, queries2]:
    dataset_query = ImageBaseDataset(queries, transform=transform)
    embeddings_query = inference(extractor, dataset_query, batch_size=4, num_workers=0)

    # for the operation below we are going to provide integrations with vector search DB like QDrant or Faiss
    rr = RetrievalResults.from_embeddings_qg(
        embeddings_query=embeddings_query, embeddings_gallery=embeddings_gallery,
        dataset_query=dataset_query, dataset_gallery=dataset_gallery
    )
    rr = ConstantThresholding(th=80).process(rr)
    rr.visualize_qg([0, 1], dataset_query=dataset_query, dataset_gallery=dataset_gallery)  # set-up: no show=True
    print(rr)
