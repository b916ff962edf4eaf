# OML 4.0's README, "Retrieval by trained model": predictions on a test set without labels.
from oml_core.data import ImageQueryGalleryDataset
from oml_core.inference import inference
from oml_vit import ViTExtractor
from oml_core.weights import get_transforms_for_pretrained
from oml_core.data import get_mock_images_dataset
from oml_core.retrieval import RetrievalResults, AdaptiveThresholding

_, df_test = get_mock_images_dataset(global_paths=True)
del df_test["label"]  # we don't need gt labels for doing predictions

extractor = ViTExtractor(None, arch="vits16", normalise_features=False).to("cpu")  # set-up: random weights, not from_pretrained("vits16_dino")
transform, _ = get_transforms_for_pretrained("vits16_dino")

dataset = ImageQueryGalleryDataset(df_test, transform=transform)
embeddings = inference(extractor, dataset, batch_size=4, num_workers=0)

rr = RetrievalResults.from_embeddings(embeddings, dataset, n_items=5)
rr = AdaptiveThresholding(n_std=3.5).process(rr)
rr.visualize(query_ids=[0, 1], dataset=dataset)  # set-up: no show=True

# you get the ids of retrieved items and the corresponding distances
print(rr)
