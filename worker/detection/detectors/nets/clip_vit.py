"""CLIP's visual tower (OpenAI naming) and UniversalFakeDetect's linear probe on it.

UniversalFakeDetect (Ojha et al. 2023, models/clip_models.py): ``CLIPModel('ViT-L/14')`` encodes the
image with CLIP's ``encode_image`` (768-d after the projection) and a ``fc = nn.Linear(768, 1)``;
the published ``fc_weights.pth`` holds that layer alone (``weight``, ``bias``). The backbone is
OpenAI's ViT-L/14, read here from a local state-dict file whose keys start with ``visual.``.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class VitConfig:
    input_resolution: int = 224
    patch_size: int = 14
    width: int = 1024
    layers: int = 24
    heads: int = 16
    output_dim: int = 768


VIT_L14 = VitConfig()


class LayerNorm(nn.LayerNorm):
    """CLIP's LayerNorm: computed in float32 whatever the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.float16, torch.bfloat16):
            return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(),
                                self.eps).to(x.dtype)
        return super().forward(x)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, width * 4)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(width * 4, width)),
        ]))
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self, cfg: VitConfig = VIT_L14) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        scale = w ** -0.5
        self.conv1 = nn.Conv2d(3, w, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn((cfg.input_resolution // cfg.patch_size) ** 2 + 1, w))
        self.ln_pre = LayerNorm(w)
        self.transformer = Transformer(w, cfg.layers, cfg.heads)
        self.ln_post = LayerNorm(w)
        self.proj = nn.Parameter(scale * torch.randn(w, cfg.output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # N, grid*grid, width
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)  # sequence-first, as CLIP
        return self.ln_post(x[:, 0, :]) @ self.proj


class UniversalFakeDetect(nn.Module):
    """CLIP ViT-L/14 image features -> ``fc`` (768 -> 1); sigmoid of the logit is P(fake)."""

    cam_layer = None  # no Grad-CAM on the transformer; the heat map comes from a conv detector

    def __init__(self, cfg: VitConfig = VIT_L14) -> None:
        super().__init__()
        self.visual = VisionTransformer(cfg)
        self.fc = nn.Linear(cfg.output_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.visual(x))
