"""Credence's own baseline: a small fully convolutional net trained on crops (never resized).

Input is the RGB crop normalised with ImageNet statistics, plus NPR's neighbouring-pixel residual
(the traces that up-sampling layers leave in 2x2 cells) as three more channels. Six 3x3 conv layers,
global average pooling, one logit. About 126k parameters (0.5 MB as float32); fully convolutional, so it
runs on any crop size >= 32 px (trained on 64 px crops, applied to the 224 px centre crop).
"""
from __future__ import annotations

import torch
from torch import nn

from worker.detection.detectors.nets.resnet import npr_residual

WIDTHS = (16, 32, 32, 64, 64, 96)
STRIDES = (1, 2, 1, 2, 1, 2)


class BaselineNet(nn.Module):
    cam_layer = "features.5"

    def __init__(self, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 6
        for cout, stride in zip(widths, STRIDES):
            layers.append(nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                        nn.ReLU(inplace=True)))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, npr_residual(x) * 4.0], dim=1)
        return self.head(self.features(x).mean(dim=(2, 3)))
