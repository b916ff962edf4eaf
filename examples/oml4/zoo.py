# OML 4.0's README, "Zoo: Images": a pretrained model, its transforms and image reader, a checkpoint on disk.
from oml_core.weights import CKPT_SAVE_ROOT as CKPT_DIR
from oml_core.data import MOCK_DATASET_PATH as DATA_DIR
from oml_vit import ViTExtractor
from oml_core.weights import get_transforms_for_pretrained

model = ViTExtractor(None, arch="vits16", normalise_features=False).eval()  # set-up: random weights, not from_pretrained("vits16_dino")
transforms, im_reader = get_transforms_for_pretrained("vits16_dino")

img = im_reader(DATA_DIR / "images" / "circle_1.jpg")  # put path to your image here
img_tensor = transforms(img)
# img_tensor = transforms(image=img)["image"]  # for transforms from Albumentations

features = model(img_tensor.unsqueeze(0))

# Check other available models:
print(list(ViTExtractor.pretrained_models.keys()))

# Load checkpoint saved on a disk:
model_ = ViTExtractor(weights=CKPT_DIR / "vits16_dino.ckpt", arch="vits16", normalise_features=False)
