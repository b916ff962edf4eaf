"""Transforms: hand-computed resize/normalise results, slow-loop references for the colour maths, determinism."""

from __future__ import annotations

import colorsys
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from oml_core import ConfigError, Host
from oml_core.data.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    build_transforms,
    get_augs_torch,
    get_normalisation_resize_torch,
    hsv_to_rgb,
    rgb_to_hsv,
    to_tensor,
)
from oml_core.errors import OMLError, UnknownComponentError
from oml_core.pipelines.configs import DataConfig
from oml_core.testing import contract_cases

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)


def _pil() -> Image.Image:
    return Image.fromarray(PIXELS)


def _tensor() -> torch.Tensor:
    return torch.from_numpy(PIXELS).permute(2, 0, 1).float() / 255


# ------------------------------------------------------------------------------------------------ hand-computed
def test_to_tensor_divides_by_255() -> None:
    out = ToTensor()(_pil())
    assert out.shape == (3, 12, 16) and out.dtype == torch.float32
    assert out[1, 4, 7].item() == pytest.approx(PIXELS[4, 7, 1] / 255)
    assert torch.equal(to_tensor(torch.from_numpy(PIXELS).permute(2, 0, 1)), out)


def test_normalise_matches_the_formula() -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = Normalize(mean, std)(_pil())
    for c in range(3):
        assert out[c, 3, 5].item() == pytest.approx((PIXELS[3, 5, c] / 255 - mean[c]) / std[c], abs=1e-6)
    assert Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))(torch.ones(3, 1, 1)).flatten().tolist() == [1.0, 1.0, 1.0]


def test_box_resize_by_two_is_the_block_mean() -> None:
    blocks = PIXELS[:12, :16].reshape(6, 2, 8, 2, 3).astype(np.float64).mean(axis=(1, 3))  # (6, 8, 3)
    pil_out = np.asarray(Resize((6, 8), interpolation="box")(_pil()))
    # pillow works in two 8-bit passes (rows, then columns), rounding after each: at most 1 level off
    assert np.abs(pil_out.astype(np.float64) - blocks).max() <= 1.0
    tensor_out = Resize((6, 8), interpolation="box")(_tensor())
    assert torch.allclose(tensor_out, torch.from_numpy(blocks / 255).permute(2, 0, 1).float(), atol=1e-6)


def test_nearest_upscale_by_two_repeats_pixels() -> None:
    expected = PIXELS.repeat(2, axis=0).repeat(2, axis=1)
    assert np.array_equal(np.asarray(Resize((24, 32), interpolation="nearest")(_pil())), expected)
    tensor_out = Resize((24, 32), interpolation="nearest")(torch.from_numpy(PIXELS).permute(2, 0, 1))
    assert tensor_out.dtype == torch.uint8 and np.array_equal(tensor_out.permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_pillow_and_tensor_resizes_agree(interpolation: str) -> None:
    big = np.random.default_rng(1).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    pil_out = np.asarray(Resize((16, 20), interpolation=interpolation)(Image.fromarray(big))).astype(np.float64)  # type: ignore[arg-type]
    tensor_out = Resize((16, 20), interpolation=interpolation)(torch.from_numpy(big).permute(2, 0, 1).float())  # type: ignore[arg-type]
    assert np.abs(tensor_out.permute(1, 2, 0).numpy() - pil_out).mean() < 1.5


def test_keep_aspect_resize_pads_centred() -> None:
    image = Image.new("RGB", (40, 10), (200, 100, 50))
    out = np.asarray(Resize(20, keep_aspect=True, fill=7)(image))
    assert out.shape == (20, 20, 3)
    content_rows = [r for r in range(20) if (out[r] != 7).any()]
    assert content_rows == list(range(7, 12))  # 5 rows of content, (20 - 5) // 2 = 7 above
    assert tuple(out[9, 10]) == (200, 100, 50)
    tensor_out = Resize(20, keep_aspect=True, fill=255)(torch.zeros(3, 10, 40))
    assert tensor_out.shape == (3, 20, 20) and tensor_out[0, 0, 0].item() == 1.0 and tensor_out[0, 9, 9].item() == 0.0


def test_center_crop_takes_the_middle() -> None:
    out = np.asarray(CenterCrop((4, 6))(_pil()))
    assert np.array_equal(out, PIXELS[4:8, 5:11])
    assert torch.equal(CenterCrop((4, 6))(_tensor()), _tensor()[:, 4:8, 5:11])
    assert CenterCrop(20)(_pil()).size == (20, 20)  # smaller images are padded first


def test_flip_probabilities() -> None:
    assert np.array_equal(np.asarray(RandomHorizontalFlip(p=1.0)(_pil())), PIXELS[:, ::-1])
    assert np.array_equal(np.asarray(RandomHorizontalFlip(p=0.0)(_pil())), PIXELS)
    assert torch.equal(RandomHorizontalFlip(p=1.0)(_tensor()), _tensor().flip(-1))


# ------------------------------------------------------------------------------------------------ colour vs slow loops
def _slow(fn: object, tensor: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(tensor)
    for y in range(tensor.shape[1]):
        for x in range(tensor.shape[2]):
            out[:, y, x] = torch.tensor(fn(*tensor[:, y, x].tolist()))  # type: ignore[operator]
    return out


def test_rgb_hsv_round_trip_matches_colorsys() -> None:
    tensor = torch.rand(3, 6, 7, generator=torch.Generator().manual_seed(0))
    tensor[:, 0, 0] = torch.tensor([0.5, 0.5, 0.5])  # grey: hue 0, saturation 0
    tensor[:, 0, 1] = 0.0
    hsv = rgb_to_hsv(tensor)
    assert torch.allclose(hsv, _slow(colorsys.rgb_to_hsv, tensor), atol=1e-5)
    assert torch.allclose(hsv_to_rgb(hsv), _slow(colorsys.hsv_to_rgb, hsv), atol=1e-5)
    assert torch.allclose(hsv_to_rgb(hsv), tensor, atol=1e-5)


def test_brightness_contrast_saturation_match_slow_formulas() -> None:
    tensor = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(1))

    def gray(r: float, g: float, b: float) -> float:
        return 0.2989 * r + 0.587 * g + 0.114 * b

    mean_gray = sum(gray(*tensor[:, y, x].tolist()) for y in range(4) for x in range(5)) / 20

    def clip(v: float) -> float:
        return min(1.0, max(0.0, v))

    assert torch.allclose(
        adjust_brightness(tensor, 1.7), _slow(lambda r, g, b: [clip(1.7 * v) for v in (r, g, b)], tensor), atol=1e-6
    )
    contrast = _slow(lambda r, g, b: [clip(0.3 * v + 0.7 * mean_gray) for v in (r, g, b)], tensor)
    assert torch.allclose(adjust_contrast(tensor, 0.3), contrast, atol=1e-6)
    saturation = _slow(lambda r, g, b: [clip(1.5 * v - 0.5 * gray(r, g, b)) for v in (r, g, b)], tensor)
    assert torch.allclose(adjust_saturation(tensor, 1.5), saturation, atol=1e-6)


def test_color_jitter_keeps_the_input_kind() -> None:
    jitter = ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1)
    assert isinstance(jitter(_pil()), Image.Image)
    uint8 = jitter(torch.from_numpy(PIXELS).permute(2, 0, 1))
    assert isinstance(uint8, torch.Tensor) and uint8.dtype == torch.uint8
    assert jitter(_tensor()).dtype == torch.float32
    assert ColorJitter()(_pil()) is not None and np.array_equal(np.asarray(ColorJitter()(_pil())), PIXELS)


# ------------------------------------------------------------------------------------------------ randomness
def test_random_resized_crop_params_respect_scale_and_ratio() -> None:
    crop = RandomResizedCrop(8, scale=(0.3, 0.9), ratio=(0.5, 2.0), generator=torch.Generator().manual_seed(0))
    for _ in range(200):
        top, left, h, w = crop.get_params(40, 60)
        assert 0 <= top and top + h <= 40 and 0 <= left and left + w <= 60
        assert 0.3 * 2400 * 0.8 <= h * w <= 0.9 * 2400 * 1.2  # rounding of h and w moves the area a little
    assert crop(_pil()).size == (8, 8)


@pytest.mark.parametrize(
    "make", [lambda: get_augs_torch(16), lambda: RandomResizedCrop(10), lambda: ColorJitter(0.4, 0.4, 0.4, 0.2)]
)
def test_random_transforms_repeat_under_torch_manual_seed(make: object) -> None:
    transform = make()  # type: ignore[operator]
    outputs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        outputs.append(to_tensor(transform(_pil())))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], outputs[2])


def test_explicit_generator_makes_transforms_repeatable() -> None:
    def run() -> torch.Tensor:
        transform = get_augs_torch(16, generator=torch.Generator().manual_seed(5))
        torch.manual_seed(0)
        first = transform(_pil())
        torch.manual_seed(1)  # the global seed does not matter with an explicit generator
        return torch.stack([first, transform(_pil())])

    assert torch.equal(run(), run())


def test_presets_shapes_and_pickling() -> None:
    for transform in (get_normalisation_resize_torch(24), get_augs_torch(24)):
        out = transform(Image.new("RGB", (50, 30)))
        assert out.shape == (3, 24, 24) and out.dtype == torch.float32
        copy = pickle.loads(pickle.dumps(transform))
        torch.manual_seed(0)
        a = transform(_pil())
        torch.manual_seed(0)
        assert torch.equal(a, copy(_pil()))
    assert "Resize" in repr(get_normalisation_resize_torch(24))
    assert len(Compose([get_normalisation_resize_torch(8), ToTensor()])) == 4


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Resize(0), "size must be positive"),
        (lambda: Resize(8, interpolation="lanczos"), "interpolation must be one of"),  # type: ignore[arg-type]
        (lambda: Normalize(std=(0.2, 0.0, 0.2)), "std values must be > 0"),
        (lambda: ColorJitter(hue=0.7), "hue must be in"),
        (lambda: RandomHorizontalFlip(p=2), "probability"),
        (lambda: RandomResizedCrop(8, scale=(0.9, 0.1)), "scale must be"),
        (lambda: Compose([3]), "must be callable"),
    ],
)
def test_bad_parameters_are_explained(make: object, message: str) -> None:
    with pytest.raises(OMLError, match=message):
        make()  # type: ignore[operator]


def test_normalise_refuses_a_channel_mismatch() -> None:
    with pytest.raises(OMLError, match="1 channels but mean/std have 3"):
        Normalize()(torch.zeros(1, 2, 2))


# ------------------------------------------------------------------------------------------------ registry
@pytest.fixture(scope="module")
def host() -> Host:
    return Host(entry_points=False, env={})


def test_build_transforms_from_names_mappings_and_config_choices(host: Host) -> None:
    compose = build_transforms(host, [{"type": "resize", "size": 16, "keep_aspect": True}, "horizontal_flip", "normalise"])
    assert [type(t).__name__ for t in compose] == ["Resize", "RandomHorizontalFlip", "Normalize"]
    assert compose(_pil()).shape == (3, 16, 16)
    config = host.registries.structure(
        {
            "dataframe": "df.csv",
            "transforms_train": [{"type": "augs_torch", "im_size": 20}, {"type": "color_jitter", "hue": 0.1}],
        },
        DataConfig,
    )
    compose = build_transforms(host.registries, config.transforms_train)
    assert len(compose) == 6 and compose(_pil()).shape == (3, 20, 20)
    default = build_transforms(host.registries.transforms, [])
    assert [type(t).__name__ for t in default] == ["ToTensor", "Normalize"]


def test_build_transforms_reports_unknown_names_and_bad_options(host: Host) -> None:
    with pytest.raises(UnknownComponentError, match="available: .*resize"):
        build_transforms(host, ["rezise"])
    with pytest.raises(ConfigError, match="size"):
        build_transforms(host, [{"type": "resize", "size": 3.5}])
    with pytest.raises(OMLError, match="no 'type' key"):
        build_transforms(host, [{"size": 3}])


@pytest.mark.parametrize("case", contract_cases("oml_core.builtin.data"), ids=str)
def test_contracts(case: object) -> None:
    case.run()  # type: ignore[attr-defined]
