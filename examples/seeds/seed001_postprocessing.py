"""Seed 001, part 04 ("postprocessor 예제"): transforms, embeddings of a whole dataframe, a ConcatSiamese re-ranker,
its loss and the PairwiseImagesPostprocessor that re-estimates the distances of each query's top-n galleries.

The blocks come from OML's postprocessing notebook, which defined ``dataset_root`` and ``extractor`` first; the
``# set-up`` lines provide them. The import lines are this project's (the notebook imported from ``oml.*``).
"""

from oml_siamese import ConcatSiamese, PairwiseImagesPostprocessor
from oml_vit import ViTExtractor
from torch.nn import BCEWithLogitsLoss

from oml_core.data import download_mock_dataset
from oml_core.data.transforms import get_normalisation_resize_torch
from oml_core.inference import inference_on_dataframe

dataset_root = "mock_dataset/"  # set-up (not in the seed): the notebook's dataset root
download_mock_dataset(dataset_root)  # set-up (not in the seed): the notebook's dataset (df.csv and its images)
extractor = ViTExtractor("vits16_dino", arch="vits16", normalise_features=False)  # set-up (not in the seed): as in seed 004

# https://pytorch.org/vision/0.8/transforms.html # 원본 추정
# https://pytorch.org/vision/0.8/_modules/torchvision/transforms/transforms.html#Resize
transform = get_normalisation_resize_torch(im_size=64)

embeddings_train, embeddings_val, df_train, df_val = \
    inference_on_dataframe(dataset_root, "df.csv", extractor=extractor, transforms=transform)

# https://open-metric-learning.readthedocs.io/en/latest/contents/models.html#concatsiamese
# 이 모델은 두 개의 입력을 연결하여 주어진 백본에 통과시키고 그 후에 헤드를 적용
siamese = ConcatSiamese(extractor=extractor, mlp_hidden_dims=[100])

# https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html
# https://ok-lab.tistory.com/241
# Sigmoid 레이어와 BCELoss를 하나의 클래스로 결합한 것
criterion = BCEWithLogitsLoss()

# https://open-metric-learning.readthedocs.io/en/latest/contents/postprocessing.html#pairwiseimagespostprocessor
# 쿼리와 쿼리에 가장 가까운 상위 n개 갤러리 사이의 거리를 다시 추정
postprocessor = PairwiseImagesPostprocessor(top_n=3, pairwise_model=siamese, transforms=transform)
