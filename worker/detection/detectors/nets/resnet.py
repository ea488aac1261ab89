"""ResNet-50 in plain torch.nn, with torchvision's parameter names.

- ``resnet50``: the network of CNNDetection (Wang et al. 2020; ``resnet50(num_classes=1)``, checkpoint
  ``{"model": state_dict}``), ImageNet stem, four stages, ``fc`` -> one logit.
- ``npr_resnet50``: NPR (Tan et al. 2024, networks/resnet.py): the input is the neighbouring-pixel
  residual ``x - up(down(x))`` scaled by 2/3, a 3x3 stride-2 stem, only ``layer1`` and ``layer2``,
  then ``fc1`` (512 -> 1).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv3x3(inplanes: int, planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(inplanes: int, planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)  # stride on the 3x3, as torchvision (v1.5)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
    downsample = None
    if stride != 1 or inplanes != planes * Bottleneck.expansion:
        downsample = nn.Sequential(conv1x1(inplanes, planes * Bottleneck.expansion, stride),
                                   nn.BatchNorm2d(planes * Bottleneck.expansion))
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    inplanes = planes * Bottleneck.expansion
    layers += [Bottleneck(inplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers), inplanes


class ResNet50(nn.Module):
    """torchvision.models.resnet50(num_classes=...) without torchvision."""

    cam_layer = "layer4"

    def __init__(self, num_classes: int = 1, layers: tuple[int, ...] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        self.layer1, inplanes = _stage(inplanes, 64, layers[0], 1)
        self.layer2, inplanes = _stage(inplanes, 128, layers[1], 2)
        self.layer3, inplanes = _stage(inplanes, 256, layers[2], 2)
        self.layer4, inplanes = _stage(inplanes, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """x minus its nearest-neighbour down-then-up copy: the traces of up-sampling (NPR's input)."""
    down = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
    return x - F.interpolate(down, scale_factor=2.0, mode="nearest", recompute_scale_factor=True)


class NPRResNet50(nn.Module):
    """NPR's ResNet: residual input, 3x3/2 stem, layer1 + layer2 only, ``fc1`` 512 -> 1."""

    cam_layer = "layer2"

    def __init__(self, num_classes: int = 1, layers: tuple[int, ...] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        self.layer1, inplanes = _stage(inplanes, 64, layers[0], 1)
        self.layer2, inplanes = _stage(inplanes, 128, layers[1], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc1 = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(npr_residual(x) * 2.0 / 3.0)
        x = self.maxpool(self.relu(self.bn1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc1(torch.flatten(self.avgpool(x), 1))
