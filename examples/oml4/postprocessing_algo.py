# OML 4.0's docs, "Post-processing: algorithms": thresholding the retrieved lists.
from oml_core.data import ImageQueryGalleryLabeledDataset
from oml_core.inference import inference
from oml_core.retrieval import calc_retrieval_metrics_rr
from oml_vit import ViTExtractor
from oml_core.weights import get_transforms_for_pretrained
from oml_core.retrieval import RetrievalResults, AdaptiveThresholding, ConstantThresholding
from oml_core.data import get_mock_images_dataset

_, df_test = get_mock_images_dataset(global_paths=True)

extractor = ViTExtractor(None, arch="vits16", normalise_features=False)  # set-up: random weights, not from_pretrained("vits16_dino")
transforms, _ = get_transforms_for_pretrained("vits16_dino")

dataset = ImageQueryGalleryLabeledDataset(df_test)

embeddings = inference(extractor, dataset, batch_size=4, num_workers=0)

rr = RetrievalResults.from_embeddings(embeddings, dataset, n_items=5)
print(rr, calc_retrieval_metrics_rr(rr), "\n")

rr = ConstantThresholding(th=75).process(rr)
print(rr, calc_retrieval_metrics_rr(rr), "\n")

rr = AdaptiveThresholding(n_std=1.5).process(rr)
print(rr, calc_retrieval_metrics_rr(rr), "\n")
