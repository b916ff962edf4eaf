# OML 4.0's docs, "Post-processing by NN", prediction: re-rank the top 3 of each query with a siamese model.
from oml_core.data import ImageQueryGalleryDataset
from oml_core.inference import inference
from oml_siamese import ConcatSiamese
from oml_vit import ViTExtractor
from oml_core.weights import get_transforms_for_pretrained
from oml_siamese import PairwiseReranker
from oml_core.data import get_mock_images_dataset
from oml_core.retrieval import RetrievalResults

_, df_test = get_mock_images_dataset(global_paths=True)
del df_test["label"]  # we don't need gt labels for doing predictions

extractor = ViTExtractor(None, arch="vits16", normalise_features=False).to("cpu")  # set-up: random weights, not from_pretrained("vits16_dino")
transforms, _ = get_transforms_for_pretrained("vits16_dino")

dataset = ImageQueryGalleryDataset(df_test, transform=transforms)

# 1. Let's get top 5 galleries closest to every query...
embeddings = inference(extractor, dataset, batch_size=4, num_workers=0)
rr = RetrievalResults.from_embeddings(embeddings, dataset, n_items=5)

# 2. ... and let's re-rank first 3 of them
siamese = ConcatSiamese(extractor=extractor, mlp_hidden_dims=[100])  # Note! Replace it with your trained postprocessor
postprocessor = PairwiseReranker(top_n=3, pairwise_model=siamese, batch_size=4, num_workers=0)
rr_upd = postprocessor.process(rr, dataset=dataset)

# You may see the first 3 positions have changed, but the rest remain the same:
print(rr, "\n", rr_upd)
