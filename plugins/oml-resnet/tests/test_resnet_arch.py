"""The ResNets have torchvision's state_dict names and shapes; torchvision and MoCo layouts load strictly; GeM
pooling and zero-safe normalisation behave."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from oml_resnet import ARCHS, GeM, ResnetExtractor, build_resnet

from oml_core.weights import WeightsError

# torchvision's resnet: (block kind, blocks per stage); a Bottleneck expands its planes by 4
PUBLISHED = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
# torchvision's documented parameter counts (with the 1000-class fc) and state_dict sizes
PUBLISHED_PARAMETERS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
PUBLISHED_TENSORS = {"resnet18": 122, "resnet50": 320}


def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.weight": (channels,),
        f"{prefix}.bias": (channels,),
        f"{prefix}.running_mean": (channels,),
        f"{prefix}.running_var": (channels,),
        f"{prefix}.num_batches_tracked": (),
    }


def expected_shapes(arch: str, with_fc: bool = True) -> dict[str, tuple[int, ...]]:
    kind, blocks = PUBLISHED[arch]
    expansion = 1 if kind == "basic" else 4
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for i in range(count):
            p = f"layer{stage}.{i}"
            if kind == "basic":
                shapes.update({f"{p}.conv1.weight": (planes, inplanes, 3, 3), **_bn(f"{p}.bn1", planes)})
                shapes.update({f"{p}.conv2.weight": (planes, planes, 3, 3), **_bn(f"{p}.bn2", planes)})
            else:
                shapes.update({f"{p}.conv1.weight": (planes, inplanes, 1, 1), **_bn(f"{p}.bn1", planes)})
                shapes.update({f"{p}.conv2.weight": (planes, planes, 3, 3), **_bn(f"{p}.bn2", planes)})
                shapes.update({f"{p}.conv3.weight": (planes * 4, planes, 1, 1), **_bn(f"{p}.bn3", planes * 4)})
            if i == 0 and (stage > 1 or inplanes != planes * expansion):
                shapes[f"{p}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                shapes.update(_bn(f"{p}.downsample.1", planes * expansion))
            inplanes = planes * expansion
    if with_fc:
        shapes.update({"fc.weight": (1000, 512 * expansion), "fc.bias": (1000,)})
    return shapes


def test_the_table_agrees_with_torchvision_counts() -> None:
    for arch, count in PUBLISHED_PARAMETERS.items():
        shapes = expected_shapes(arch)
        buffers = ("running_mean", "running_var", "num_batches_tracked")
        params = sum(torch.Size(s).numel() for k, s in shapes.items() if not k.endswith(buffers))
        assert params == count, arch
    for arch, count in PUBLISHED_TENSORS.items():
        assert len(expected_shapes(arch)) == count


@pytest.mark.parametrize("arch", list(PUBLISHED))
@pytest.mark.parametrize("with_fc", [True, False])
def test_state_dict_has_torchvision_names_and_shapes(arch: str, with_fc: bool) -> None:
    with torch.device("meta"):
        model = build_resnet(arch, num_classes=1000 if with_fc else None)
    actual = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert actual == expected_shapes(arch, with_fc)


def _torchvision_checkpoint(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in expected_shapes(arch).items():
        if name.endswith("num_batches_tracked"):
            out[name] = torch.tensor(100)
        elif name.endswith("running_var"):
            out[name] = torch.rand(shape, generator=generator) + 0.5
        else:
            out[name] = torch.randn(shape, generator=generator) * 0.05
    return out


def test_a_torchvision_checkpoint_loads_with_and_without_the_classifier(tmp_path: Path) -> None:
    checkpoint = _torchvision_checkpoint("resnet18")
    torch.save(checkpoint, tmp_path / "resnet18-tv.pth")
    path = tmp_path / "resnet18-tv.pth"
    without_fc = ResnetExtractor(path, arch="resnet18", gem_p=None, remove_fc=True, normalise_features=False)
    with_fc = ResnetExtractor(tmp_path / "resnet18-tv.pth", arch="resnet18", remove_fc=False)
    assert without_fc.feat_dim == 512 and with_fc.feat_dim == 1000
    assert "fc.weight" not in without_fc.model.state_dict()
    assert torch.equal(with_fc.model.fc.weight, checkpoint["fc.weight"])
    assert all(torch.equal(without_fc.model.state_dict()[k], v) for k, v in checkpoint.items() if not k.startswith("fc."))
    with torch.no_grad():
        images = torch.rand(2, 3, 64, 64)
        features = without_fc.eval()(images)
        logits = with_fc.eval()(images)
    assert features.shape == (2, 512) and logits.shape == (2, 1000)
    assert torch.allclose(logits, features @ checkpoint["fc.weight"].T + checkpoint["fc.bias"], atol=1e-4)


def test_a_moco_checkpoint_loads_its_query_encoder(tmp_path: Path) -> None:
    query = _torchvision_checkpoint("resnet18", seed=1)
    key = _torchvision_checkpoint("resnet18", seed=2)
    state_dict = {f"module.encoder_q.{k}": v for k, v in query.items() if not k.startswith("fc.")}
    state_dict.update({f"module.encoder_k.{k}": v for k, v in key.items() if not k.startswith("fc.")})
    state_dict.update(
        {
            "module.encoder_q.fc.0.weight": torch.randn(512, 512),
            "module.encoder_q.fc.0.bias": torch.randn(512),
            "module.encoder_q.fc.2.weight": torch.randn(128, 512),
            "module.encoder_q.fc.2.bias": torch.randn(128),
            "module.queue": torch.randn(128, 64),
            "module.queue_ptr": torch.zeros(1, dtype=torch.long),
        }
    )
    optimizer = {"state": {}, "param_groups": [{"lr": 0.03}]}
    moco = {"epoch": 800, "arch": "resnet18", "state_dict": state_dict, "optimizer": optimizer}
    torch.save(moco, tmp_path / "moco.pth.tar")
    extractor = ResnetExtractor(str(tmp_path / "moco.pth.tar"), arch="resnet18", gem_p=5.0)
    assert torch.equal(extractor.model.layer4[1].conv2.weight, query["layer4.1.conv2.weight"])
    assert isinstance(extractor.model.avgpool, GeM) and extractor.model.avgpool.p == 5.0


def test_a_checkpoint_of_another_depth_is_refused(tmp_path: Path) -> None:
    torch.save(_torchvision_checkpoint("resnet18"), tmp_path / "r18.pth")
    with pytest.raises(WeightsError, match=r"r18\.pth does not fit ResNet: .*missing key\(s\), e.g. layer1\.2\."):
        ResnetExtractor(str(tmp_path / "r18.pth"), arch="resnet34")


def test_gem_equals_a_slow_loop_and_bounds() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 4, 5) * 3
    p = 3.0
    out = GeM(p=p)(x)
    for b in range(2):
        for c in range(3):
            values = [max(float(v), 1e-6) ** p for v in x[b, c].flatten()]
            assert out[b, c, 0, 0].item() == pytest.approx((sum(values) / len(values)) ** (1 / p), rel=1e-5)
    assert torch.allclose(GeM(p=1.0)(x), x.mean(dim=(2, 3), keepdim=True), atol=1e-6)
    assert (out <= x.amax(dim=(2, 3), keepdim=True) + 1e-5).all() and (out >= x.mean(dim=(2, 3), keepdim=True) - 1e-5).all()


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_arch_maps_images_to_feat_dim(arch: str) -> None:
    with torch.device("meta"):
        extractor = ResnetExtractor(None, arch=arch, gem_p=3.0)
        out = extractor(torch.empty(2, 3, 64, 48))
    assert tuple(out.shape) == (2, extractor.feat_dim) == (2, 512 if arch in ("resnet18", "resnet34") else 2048)


def test_all_zero_features_normalise_to_zero_with_finite_gradients() -> None:
    # a ReLU network whose stem outputs zeros gives all-zero features: OML's normalisation made them NaN
    extractor = ResnetExtractor(None, arch="resnet18", normalise_features=True)
    with torch.no_grad():
        extractor.model.bn1.weight.zero_()
        extractor.model.bn1.bias.zero_()
    images = torch.rand(4, 3, 32, 32)
    out = extractor.train()(images)
    assert torch.equal(out, torch.zeros(4, 512))
    (out.sum() + extractor.model.layer4[0].conv1.weight.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in extractor.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    ("stem", "layer1_size", "final_size"), [("imagenet", 8, 1), ("small", 32, 4), ("small_stride2", 16, 2)]
)
def test_stems_for_small_images_keep_their_resolution(stem: str, layer1_size: int, final_size: int) -> None:
    model = build_resnet("resnet18", num_classes=None, width=16, stem=stem)  # type: ignore[arg-type]
    x = torch.rand(2, 3, 32, 32)
    after_stem = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    assert after_stem.shape[-1] == layer1_size
    assert model.forward_features(x).shape[1:] == (128, final_size, final_size)
    assert model(x).shape == (2, model.feat_dim) == (2, 128)


def test_width_scales_every_stage_and_the_feature_size() -> None:
    narrow = build_resnet("resnet50", num_classes=None, width=16)
    assert narrow.feat_dim == 16 * 8 * 4
    assert narrow.layer4[0].conv3.out_channels == 512 and narrow.conv1.out_channels == 16
    full = sum(p.numel() for p in build_resnet("resnet18", num_classes=None).parameters())
    quarter = sum(p.numel() for p in build_resnet("resnet18", num_classes=None, width=16).parameters())
    assert 15 < full / quarter < 17  # convolutions scale with width squared


def test_pretrained_weights_with_another_layout_are_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(build_resnet("resnet18").state_dict(), path)
    with pytest.raises(Exception, match=r"width 64, imagenet stem.*weights: null"):
        ResnetExtractor(str(path), arch="resnet18", width=32)
    with pytest.raises(Exception, match=r"classifier for global pooling, not for pool_grid 2.*remove_fc: true"):
        ResnetExtractor(str(path), arch="resnet18", pool_grid=2, remove_fc=False)
    assert ResnetExtractor(str(path), arch="resnet18", pool_grid=2, remove_fc=True).model.feat_dim == 512 * 4
    with pytest.raises(Exception, match="unknown ResNet stem 'tiny'; available: imagenet, small, small_stride2"):
        build_resnet("resnet18", stem="tiny")  # type: ignore[arg-type]


def test_a_pool_grid_keeps_where_features_are() -> None:
    torch.manual_seed(0)
    model = build_resnet("resnet18", num_classes=None, width=8, stem="small", pool_grid=2).eval()
    assert model.feat_dim == 64 * 4
    glyph = torch.zeros(2, 3, 32, 32)
    glyph[:, :, 4:12, 4:12] = 1.0  # the same square, top-left...
    moved = torch.zeros(2, 3, 32, 32)
    moved[:, :, 20:28, 20:28] = 1.0  # ...and bottom-right
    with torch.no_grad():
        gridded = model(glyph), model(moved)
        model.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        pooled = model(glyph), model(moved)
    grid_change = (gridded[0] - gridded[1]).norm() / gridded[0].norm()
    pooled_change = (pooled[0] - pooled[1]).norm() / pooled[0].norm()
    assert grid_change > 1.5 * pooled_change  # global pooling sees the move less (padding leaks some position)
    with pytest.raises(Exception, match="pool_grid must be >= 1 and 1 with GeM pooling"):
        build_resnet("resnet18", gem_p=3.0, pool_grid=2)
