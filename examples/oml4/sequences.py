# OML 4.0's docs, "Handling sequences of photos": items of the query's own sequence are not retrieved.
from oml_core.inference import inference
from oml_core.data import ImageQueryGalleryLabeledDataset
from oml_vit import ViTExtractor
from oml_core.retrieval import RetrievalResults
from oml_core.data import get_mock_images_dataset
from oml_core.retrieval import calc_retrieval_metrics_rr

extractor = ViTExtractor(None, arch="vits16", normalise_features=False).to("cpu")  # set-up: random weights, not "vits16_dino"

_, df_val = get_mock_images_dataset(global_paths=True, df_name="df_with_sequence.csv")  # <- sequence info is in the file
dataset = ImageQueryGalleryLabeledDataset(df_val)
embeddings = inference(extractor, dataset, batch_size=4, num_workers=0)

rr = RetrievalResults.from_embeddings(embeddings, dataset, n_items=5)
rr.visualize(query_ids=[2, 1], dataset=dataset)  # set-up: no show=True

metrics = calc_retrieval_metrics_rr(rr, map_top_k=(3, 5), precision_top_k=(5,), cmc_top_k=(3,))
print(rr, "\n", metrics)
