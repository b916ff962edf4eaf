"""ResNets in plain torch with torchvision's module names, so that torchvision's ImageNet checkpoints (and MoCo's,
whose keys are torchvision's under ``module.encoder_q.``) load with ``strict=True`` unchanged.

Keys: ``conv1``, ``bn1``, ``layer{1..4}.{i}.conv{1,2[,3]}``, ``.bn{1,2[,3]}``, ``.downsample.0`` (1x1 conv) and
``.downsample.1`` (BatchNorm), and ``fc`` when the classifier is kept. Bottleneck blocks stride in the 3x3 conv
(torchvision's "ResNet v1.5").
"""

from __future__ import annotations

from typing import Literal

import attrs
import torch
from torch import Tensor, nn

from oml_core.errors import OMLError
from oml_core.models import GeM


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


@attrs.frozen
class ResNetArch:
    block: type[BasicBlock] | type[Bottleneck]
    layers: tuple[int, int, int, int]

    @property
    def feat_dim(self) -> int:
        return 512 * self.block.expansion


#: How the network enters: torchvision's 7x7 convolution with stride 2 and a max-pooling (``imagenet``: maps are
#: 1/4 of the image after it, 1/32 at the end), or one 3x3 convolution for small images such as 32 px glyphs
#: (``small``: stride 1, no pooling, 1/8 at the end; ``small_stride2``: stride 2, 1/16 at the end).
Stem = Literal["imagenet", "small", "small_stride2"]
STEMS: tuple[str, ...] = ("imagenet", "small", "small_stride2")

#: The torchvision architectures, by name.
ARCHS: dict[str, ResNetArch] = {
    "resnet18": ResNetArch(BasicBlock, (2, 2, 2, 2)),
    "resnet34": ResNetArch(BasicBlock, (3, 4, 6, 3)),
    "resnet50": ResNetArch(Bottleneck, (3, 4, 6, 3)),
    "resnet101": ResNetArch(Bottleneck, (3, 4, 23, 3)),
    "resnet152": ResNetArch(Bottleneck, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """``(B, 3, H, W) -> (B, 8 * width * expansion)`` pooled features, or ``(B, num_classes)`` logits with ``fc``.

    ``gem_p`` replaces average pooling by GeM pooling (no parameters: the state_dict stays torchvision's).
    ``width`` is the channels of ``layer1`` (torchvision's 64, doubled at each stage) and ``stem`` how the image
    enters (see ``Stem``); any other than ``64`` and ``imagenet`` has its own weights (trained from scratch).
    ``pool_grid`` > 1 average-pools the last feature map to a ``pool_grid x pool_grid`` grid and flattens it: the
    features keep where each part of the image is, which global pooling forgets (a "c" and a "C" drawn on one
    baseline differ mostly by their height).

    Example:
        >>> ResNet(ARCHS["resnet18"], num_classes=None)(__import__("torch").rand(2, 3, 32, 32)).shape
        torch.Size([2, 512])
        >>> ResNet(ARCHS["resnet18"], num_classes=None, width=16, stem="small").feat_dim
        128
    """

    def __init__(
        self,
        arch: ResNetArch,
        num_classes: int | None = 1000,
        gem_p: float | None = None,
        *,
        width: int = 64,
        stem: Stem = "imagenet",
        pool_grid: int = 1,
    ) -> None:
        super().__init__()
        if pool_grid < 1 or (pool_grid > 1 and gem_p is not None):
            raise OMLError(f"ResNet pool_grid must be >= 1 and 1 with GeM pooling, got {pool_grid} (gem_p {gem_p})")
        if stem not in STEMS:
            raise OMLError(f"unknown ResNet stem {stem!r}; available: {', '.join(STEMS)}")
        if width < 1:
            raise OMLError(f"ResNet width must be >= 1, got {width}")
        self.arch, self.width, self.stem, self.pool_grid = arch, width, stem, pool_grid
        self.feat_dim = 8 * width * arch.block.expansion * pool_grid**2
        self.inplanes = width
        device = torch.get_default_device()
        # built on "meta" and initialised once by reset_parameters (torch's default init would be overwritten)
        with torch.device("meta"):
            if stem == "imagenet":
                self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            else:
                self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1 if stem == "small" else 2, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
            self.layer1 = self._make_layer(width, arch.layers[0], stride=1)
            self.layer2 = self._make_layer(2 * width, arch.layers[1], stride=2)
            self.layer3 = self._make_layer(4 * width, arch.layers[2], stride=2)
            self.layer4 = self._make_layer(8 * width, arch.layers[3], stride=2)
            self.avgpool: nn.Module = GeM(gem_p) if gem_p is not None else nn.AdaptiveAvgPool2d(pool_grid)
            self.fc: nn.Module = nn.Linear(self.feat_dim, num_classes) if num_classes else nn.Identity()
        if device.type != "meta":
            self.to_empty(device=device)
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's initialisation: He-normal convolutions, unit BatchNorms with fresh statistics."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                module.reset_parameters()

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        block = self.arch.block
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers: list[nn.Module] = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        """The feature map of ``layer4``: ``(B, feat_dim, H / 32, W / 32)`` with the ``imagenet`` stem."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.forward_features(x)).flatten(1))


def build_resnet(
    arch: str,
    *,
    num_classes: int | None = 1000,
    gem_p: float | None = None,
    width: int = 64,
    stem: Stem = "imagenet",
    pool_grid: int = 1,
) -> ResNet:
    """A randomly initialised ResNet ``arch`` (a key of ``ARCHS``); ``num_classes=None`` has no ``fc``.

    Example:
        >>> build_resnet("resnet18", num_classes=None, width=32, stem="small_stride2").feat_dim
        256
    """
    if arch not in ARCHS:
        raise OMLError(f"unknown ResNet arch {arch!r}; available: {', '.join(ARCHS)}")
    return ResNet(ARCHS[arch], num_classes=num_classes, gem_p=gem_p, width=width, stem=stem, pool_grid=pool_grid)
