"""DeepfakeBench's face-forgery detectors (Yan et al. 2023) in plain torch.nn.

Checkpoints are the detector's whole ``state_dict``: ``backbone.*`` (the loss has no parameters),
sometimes under a DataParallel ``module.`` prefix. Both take 256x256 face crops normalised with
mean = std = 0.5 and output two logits; P(fake) = softmax(logits)[:, 1].

- ``XceptionDetector``: training/networks/xception.py (FaceForensics++'s Xception), mode "original".
  Its unused ``adjust_channel`` head is built too, because it is in the checkpoint.
- ``EfficientNetB4Detector``: training/networks/efficientnetb4.py, i.e. lukemelas' EfficientNet-B4
  (the efficientnet-b4 pretrained builder: TF "same" padding computed statically for 380 px) whose stem
  DeepfakeBench replaces with a plain ``nn.Conv2d(3, 48, 3, stride=2, bias=False)`` (no padding), its
  ``_fc`` with Identity, plus ``last_layer`` 1792 -> 2.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

# ---------------------------------------------------------------- Xception


class SeparableConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int = 1, stride: int = 1, padding: int = 0,
                 dilation: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, kernel_size, stride, padding, dilation, groups=cin, bias=bias)
        self.pointwise = nn.Conv2d(cin, cout, 1, 1, 0, 1, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.conv1(x))


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, reps: int, strides: int = 1, start_with_relu: bool = True,
                 grow_first: bool = True) -> None:
        super().__init__()
        if cout != cin or strides != 1:
            self.skip = nn.Conv2d(cin, cout, 1, stride=strides, bias=False)
            self.skipbn = nn.BatchNorm2d(cout)
        else:
            self.skip = None
        rep: list[nn.Module] = []
        filters = cin
        if grow_first:
            rep += [nn.ReLU(inplace=True), SeparableConv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout)]
            filters = cout
        for _ in range(reps - 1):
            rep += [nn.ReLU(inplace=True), SeparableConv2d(filters, filters, 3, 1, 1), nn.BatchNorm2d(filters)]
        if not grow_first:
            rep += [nn.ReLU(inplace=True), SeparableConv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout)]
        if not start_with_relu:
            rep = rep[1:]
        else:
            rep[0] = nn.ReLU(inplace=False)  # the block input is also the skip: never overwrite it
        if strides != 1:
            rep.append(nn.MaxPool2d(3, strides, 1))
        self.rep = nn.Sequential(*rep)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.rep(inp)
        skip = self.skipbn(self.skip(inp)) if self.skip is not None else inp
        return x + skip


class Xception(nn.Module):
    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.block1 = Block(64, 128, 2, 2, start_with_relu=False, grow_first=True)
        self.block2 = Block(128, 256, 2, 2, start_with_relu=True, grow_first=True)
        self.block3 = Block(256, 728, 2, 2, start_with_relu=True, grow_first=True)
        for i in range(4, 12):
            setattr(self, f"block{i}", Block(728, 728, 3, 1, start_with_relu=True, grow_first=True))
        self.block12 = Block(728, 1024, 2, 2, start_with_relu=True, grow_first=False)
        self.conv3 = SeparableConv2d(1024, 1536, 3, 1, 1)
        self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = SeparableConv2d(1536, 2048, 3, 1, 1)
        self.bn4 = nn.BatchNorm2d(2048)
        self.last_linear = nn.Linear(2048, num_classes)
        self.adjust_channel = nn.Sequential(nn.Conv2d(2048, 512, 1, 1), nn.BatchNorm2d(512), nn.ReLU(inplace=True))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        for i in range(1, 13):
            x = getattr(self, f"block{i}")(x)
        x = self.relu(self.bn3(self.conv3(x)))
        return self.bn4(self.conv4(x))

    def classifier(self, features: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(F.relu(features), (1, 1)).flatten(1)
        return self.last_linear(x)


class XceptionDetector(nn.Module):
    cam_layer = "backbone.bn4"

    def __init__(self) -> None:
        super().__init__()
        self.backbone = Xception(num_classes=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.classifier(self.backbone.features(x))


# ---------------------------------------------------------------- EfficientNet-B4 (lukemelas naming)

class BlockArgs(NamedTuple):
    num_repeat: int
    kernel_size: int
    stride: int
    expand_ratio: int
    input_filters: int
    output_filters: int
    se_ratio: float = 0.25
    id_skip: bool = True


# efficientnet-b0's blocks, scaled for b4: width 1.4, depth 1.8, resolution 380.
B0_BLOCKS = (BlockArgs(1, 3, 1, 1, 32, 16), BlockArgs(2, 3, 2, 6, 16, 24), BlockArgs(2, 5, 2, 6, 24, 40),
             BlockArgs(3, 3, 2, 6, 40, 80), BlockArgs(3, 5, 1, 6, 80, 112), BlockArgs(4, 5, 2, 6, 112, 192),
             BlockArgs(1, 3, 1, 6, 192, 320))
WIDTH, DEPTH, IMAGE_SIZE = 1.4, 1.8, 380
BN_MOMENTUM, BN_EPS = 0.01, 1e-3


def round_filters(filters: int, width: float = WIDTH, divisor: int = 8) -> int:
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return int(new)


def round_repeats(repeats: int, depth: float = DEPTH) -> int:
    return int(math.ceil(depth * repeats))


def out_size(size: int, stride: int) -> int:
    return int(math.ceil(size / stride))


class Conv2dStaticSamePadding(nn.Conv2d):
    """TF 'same' padding fixed at construction for the image size the layer expects."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, image_size: int = IMAGE_SIZE,
                 **kwargs: object) -> None:
        super().__init__(cin, cout, kernel_size, stride, **kwargs)
        (kh, kw), (sh, sw) = self.weight.shape[-2:], self.stride
        pad_h = max((out_size(image_size, sh) - 1) * sh + (kh - 1) * self.dilation[0] + 1 - image_size, 0)
        pad_w = max((out_size(image_size, sw) - 1) * sw + (kw - 1) * self.dilation[1] + 1 - image_size, 0)
        if pad_h > 0 or pad_w > 0:
            self.static_padding = nn.ZeroPad2d((pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        else:
            self.static_padding = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.static_padding(x), self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class MBConvBlock(nn.Module):
    def __init__(self, args: BlockArgs, image_size: int) -> None:
        super().__init__()
        self.args = args
        inp, oup = args.input_filters, args.input_filters * args.expand_ratio
        if args.expand_ratio != 1:
            self._expand_conv = Conv2dStaticSamePadding(inp, oup, 1, bias=False, image_size=image_size)
            self._bn0 = nn.BatchNorm2d(oup, momentum=BN_MOMENTUM, eps=BN_EPS)
        self._depthwise_conv = Conv2dStaticSamePadding(oup, oup, args.kernel_size, args.stride, groups=oup, bias=False,
                                                       image_size=image_size)
        self._bn1 = nn.BatchNorm2d(oup, momentum=BN_MOMENTUM, eps=BN_EPS)
        image_size = out_size(image_size, args.stride)
        squeezed = max(1, int(args.input_filters * args.se_ratio))
        self._se_reduce = Conv2dStaticSamePadding(oup, squeezed, 1, image_size=1)
        self._se_expand = Conv2dStaticSamePadding(squeezed, oup, 1, image_size=1)
        self._project_conv = Conv2dStaticSamePadding(oup, args.output_filters, 1, bias=False, image_size=image_size)
        self._bn2 = nn.BatchNorm2d(args.output_filters, momentum=BN_MOMENTUM, eps=BN_EPS)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.args.expand_ratio != 1:
            x = swish(self._bn0(self._expand_conv(x)))
        x = swish(self._bn1(self._depthwise_conv(x)))
        s = self._se_expand(swish(self._se_reduce(F.adaptive_avg_pool2d(x, 1))))
        x = self._bn2(self._project_conv(torch.sigmoid(s) * x))
        if self.args.id_skip and self.args.stride == 1 and self.args.input_filters == self.args.output_filters:
            x = x + inputs  # drop-connect is training-only
        return x


class EfficientNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        image_size = IMAGE_SIZE
        stem = round_filters(32)
        # DeepfakeBench swaps lukemelas' padded stem for a plain, unpadded conv.
        self._conv_stem = nn.Conv2d(3, stem, kernel_size=3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(stem, momentum=BN_MOMENTUM, eps=BN_EPS)
        image_size = out_size(image_size, 2)
        blocks: list[MBConvBlock] = []
        for args in B0_BLOCKS:
            args = args._replace(input_filters=round_filters(args.input_filters),
                                 output_filters=round_filters(args.output_filters),
                                 num_repeat=round_repeats(args.num_repeat))
            blocks.append(MBConvBlock(args, image_size))
            image_size = out_size(image_size, args.stride)
            if args.num_repeat > 1:
                args = args._replace(input_filters=args.output_filters, stride=1)
            blocks += [MBConvBlock(args, image_size) for _ in range(args.num_repeat - 1)]
        self._blocks = nn.ModuleList(blocks)
        head = round_filters(1280)
        self._conv_head = Conv2dStaticSamePadding(args.output_filters, head, 1, bias=False, image_size=image_size)
        self._bn1 = nn.BatchNorm2d(head, momentum=BN_MOMENTUM, eps=BN_EPS)
        self._fc = nn.Identity()

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        x = swish(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return swish(self._bn1(self._conv_head(x)))


class EfficientNetB4(nn.Module):
    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.efficientnet = EfficientNet()
        self.last_layer = nn.Linear(round_filters(1280), num_classes)


class EfficientNetB4Detector(nn.Module):
    cam_layer = "backbone.efficientnet._bn1"

    def __init__(self) -> None:
        super().__init__()
        self.backbone = EfficientNetB4()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.backbone.efficientnet.extract_features(x)
        return self.backbone.last_layer(F.adaptive_avg_pool2d(x, (1, 1)).flatten(1))
