"""Published-checkpoint adapters without the real weights.

For each architecture the test writes, itself, a state dict with the upstream parameter names and
shapes (random values), stores it as the upstream file would be, loads it through the manifest and
registry (``weights_only=True``, ``strict=True``), and compares the forward pass with an independent
functional reimplementation of the upstream forward written here (float32; float64 for the small ViT).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from server.detection import manifest as mf
from worker.detection.detectors import registry
from worker.detection.detectors.nets.clip_vit import UniversalFakeDetect, VitConfig



@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


# ---------------------------------------------------------------- upstream shapes, written out here


def bn(prefix: str, n: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (n,), f"{prefix}.bias": (n,), f"{prefix}.running_mean": (n,),
            f"{prefix}.running_var": (n,), f"{prefix}.num_batches_tracked": ()}


def torchvision_resnet50(stem: str = "7x7", stages: int = 4, fc: str = "fc") -> dict[str, tuple[int, ...]]:
    shapes = {"conv1.weight": (64, 3, 7, 7) if stem == "7x7" else (64, 3, 3, 3), **bn("bn1", 64)}
    cin = 64
    for li, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        if li > stages:
            break
        for b in range(blocks):
            p = f"layer{li}.{b}"
            shapes[f"{p}.conv1.weight"] = (planes, cin, 1, 1)
            shapes.update(bn(f"{p}.bn1", planes))
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            shapes.update(bn(f"{p}.bn2", planes))
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            shapes.update(bn(f"{p}.bn3", planes * 4))
            if b == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, cin, 1, 1)
                shapes.update(bn(f"{p}.downsample.1", planes * 4))
            cin = planes * 4
    shapes[f"{fc}.weight"] = (1, cin)
    shapes[f"{fc}.bias"] = (1,)
    return shapes


def openai_clip_visual(width: int, layers: int, patch: int, resolution: int, out: int) -> dict[str, tuple[int, ...]]:
    grid = resolution // patch
    shapes = {"visual.class_embedding": (width,), "visual.positional_embedding": (grid * grid + 1, width),
              "visual.proj": (width, out), "visual.conv1.weight": (width, 3, patch, patch),
              "visual.ln_pre.weight": (width,), "visual.ln_pre.bias": (width,),
              "visual.ln_post.weight": (width,), "visual.ln_post.bias": (width,)}
    for i in range(layers):
        p = f"visual.transformer.resblocks.{i}"
        shapes.update({f"{p}.attn.in_proj_weight": (3 * width, width), f"{p}.attn.in_proj_bias": (3 * width,),
                       f"{p}.attn.out_proj.weight": (width, width), f"{p}.attn.out_proj.bias": (width,),
                       f"{p}.ln_1.weight": (width,), f"{p}.ln_1.bias": (width,),
                       f"{p}.mlp.c_fc.weight": (4 * width, width), f"{p}.mlp.c_fc.bias": (4 * width,),
                       f"{p}.mlp.c_proj.weight": (width, 4 * width), f"{p}.mlp.c_proj.bias": (width,),
                       f"{p}.ln_2.weight": (width,), f"{p}.ln_2.bias": (width,)})
    return shapes


# (in, out, reps, stride, start_with_relu, grow_first) of FaceForensics++/DeepfakeBench's Xception
XCEPTION_BLOCKS = [(64, 128, 2, 2, False, True), (128, 256, 2, 2, True, True), (256, 728, 2, 2, True, True)] + \
    [(728, 728, 3, 1, True, True)] * 8 + [(728, 1024, 2, 2, True, False)]


def xception_rep(cin: int, cout: int, reps: int, grow_first: bool) -> list[tuple[str, int, int]]:
    """The block's sequence as (kind, in, out) without ReLUs: separable convs and batch norms."""
    seq = []
    if grow_first:
        seq += [("sep", cin, cout), ("bn", cout, cout)]
        mid = cout
    else:
        mid = cin
    for _ in range(reps - 1):
        seq += [("sep", mid, mid), ("bn", mid, mid)]
    if not grow_first:
        seq += [("sep", cin, cout), ("bn", cout, cout)]
    return seq


def xception_indices(start_with_relu: bool, seq: list) -> list[int]:
    """Upstream's nn.Sequential indices: a ReLU before each separable conv, the first dropped if no start ReLU."""
    idx, out = 0 if start_with_relu else -1, []
    for kind, _, _ in seq:
        if kind == "sep":
            idx += 1
        out.append(idx)
        idx += 1
    return out


def deepfakebench_xception() -> dict[str, tuple[int, ...]]:
    s = {"backbone.conv1.weight": (32, 3, 3, 3), **bn("backbone.bn1", 32), "backbone.conv2.weight": (64, 32, 3, 3),
         **bn("backbone.bn2", 64)}
    for i, (cin, cout, reps, stride, relu0, grow) in enumerate(XCEPTION_BLOCKS, start=1):
        p = f"backbone.block{i}"
        if cin != cout or stride != 1:
            s[f"{p}.skip.weight"] = (cout, cin, 1, 1)
            s.update(bn(f"{p}.skipbn", cout))
        seq = xception_rep(cin, cout, reps, grow)
        for (kind, a, b), j in zip(seq, xception_indices(relu0, seq)):
            if kind == "sep":
                s[f"{p}.rep.{j}.conv1.weight"] = (a, 1, 3, 3)
                s[f"{p}.rep.{j}.pointwise.weight"] = (b, a, 1, 1)
            else:
                s.update(bn(f"{p}.rep.{j}", a))
    s.update({"backbone.conv3.conv1.weight": (1024, 1, 3, 3), "backbone.conv3.pointwise.weight": (1536, 1024, 1, 1),
              **bn("backbone.bn3", 1536), "backbone.conv4.conv1.weight": (1536, 1, 3, 3),
              "backbone.conv4.pointwise.weight": (2048, 1536, 1, 1), **bn("backbone.bn4", 2048),
              "backbone.last_linear.weight": (2, 2048), "backbone.last_linear.bias": (2,),
              "backbone.adjust_channel.0.weight": (512, 2048, 1, 1), "backbone.adjust_channel.0.bias": (512,),
              **bn("backbone.adjust_channel.1", 512)})
    return s


# EfficientNet-B4 stages as lukemelas builds them (already scaled: width 1.4, depth 1.8):
# (repeats, kernel, stride, expand, in, out)
B4_STAGES = [(2, 3, 1, 1, 48, 24), (4, 3, 2, 6, 24, 32), (4, 5, 2, 6, 32, 56), (6, 3, 2, 6, 56, 112),
             (6, 5, 1, 6, 112, 160), (8, 5, 2, 6, 160, 272), (2, 3, 1, 6, 272, 448)]


def b4_blocks() -> list[tuple[int, int, int, int, int]]:
    out = []
    for reps, k, s, e, cin, cout in B4_STAGES:
        out.append((k, s, e, cin, cout))
        out += [(k, 1, e, cout, cout)] * (reps - 1)
    return out


def deepfakebench_effb4() -> dict[str, tuple[int, ...]]:
    p = "backbone.efficientnet"
    s = {f"{p}._conv_stem.weight": (48, 3, 3, 3), **bn(f"{p}._bn0", 48)}
    for i, (k, _stride, e, cin, cout) in enumerate(b4_blocks()):
        b, mid, sq = f"{p}._blocks.{i}", cin * e, max(1, int(cin * 0.25))
        if e != 1:
            s[f"{b}._expand_conv.weight"] = (mid, cin, 1, 1)
            s.update(bn(f"{b}._bn0", mid))
        s[f"{b}._depthwise_conv.weight"] = (mid, 1, k, k)
        s.update(bn(f"{b}._bn1", mid))
        s.update({f"{b}._se_reduce.weight": (sq, mid, 1, 1), f"{b}._se_reduce.bias": (sq,),
                  f"{b}._se_expand.weight": (mid, sq, 1, 1), f"{b}._se_expand.bias": (mid,),
                  f"{b}._project_conv.weight": (cout, mid, 1, 1)})
        s.update(bn(f"{b}._bn2", cout))
    s.update({f"{p}._conv_head.weight": (1792, 448, 1, 1), **bn(f"{p}._bn1", 1792),
              "backbone.last_layer.weight": (2, 1792), "backbone.last_layer.bias": (2,)})
    return s


def random_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Values that keep activations in range: He-scaled weights, positive running variances."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            out[name] = torch.tensor(7, dtype=torch.long)
        elif name.endswith("running_var"):
            out[name] = torch.rand(shape, generator=g) + 0.5
        elif name.endswith(("running_mean", "bias")):
            out[name] = torch.randn(shape, generator=g) * 0.1
        elif name.endswith("weight") and len(shape) == 1:  # norm scales
            out[name] = 1.0 + torch.randn(shape, generator=g) * 0.1
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
            out[name] = torch.randn(shape, generator=g) * math.sqrt(1.0 / max(fan_in, 1))
    return out


def shapes_of(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def write_manifest(folder: Path, entries: list[dict]) -> None:
    (folder / mf.MANIFEST).write_text(json.dumps({"detectors": entries}))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_via_manifest(folder: Path, entry: dict) -> torch.nn.Module:
    write_manifest(folder, [entry])
    e = mf.read_manifest(folder)[0]
    return registry.build_loaded(registry.architecture(e.architecture), mf.verify(e, folder))


# ---------------------------------------------------------------- independent forward passes


def f_bn(sd, p, x, eps=1e-5):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        False, 0.0, eps)


def ref_resnet(sd, x, npr: bool = False):
    if npr:
        up = x[:, :, ::2, ::2].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        x = F.conv2d((x - up) * 2.0 / 3.0, sd["conv1.weight"], stride=2, padding=1)
    else:
        x = F.conv2d(x, sd["conv1.weight"], stride=2, padding=3)
    x = F.max_pool2d(F.relu(f_bn(sd, "bn1", x)), 3, 2, 1)
    for li, blocks in enumerate((3, 4, 6, 3) if not npr else (3, 4), start=1):
        for b in range(blocks):
            p = f"layer{li}.{b}"
            stride = 2 if (b == 0 and li > 1) else 1
            out = F.relu(f_bn(sd, f"{p}.bn1", F.conv2d(x, sd[f"{p}.conv1.weight"])))
            out = F.relu(f_bn(sd, f"{p}.bn2", F.conv2d(out, sd[f"{p}.conv2.weight"], stride=stride, padding=1)))
            out = f_bn(sd, f"{p}.bn3", F.conv2d(out, sd[f"{p}.conv3.weight"]))
            if f"{p}.downsample.0.weight" in sd:
                x = f_bn(sd, f"{p}.downsample.1", F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride))
            x = F.relu(out + x)
    x = x.mean(dim=(2, 3))
    name = "fc1" if npr else "fc"
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def ref_vit_logit(sd, x, heads: int):
    w = sd["visual.conv1.weight"]
    x = F.conv2d(x, w, stride=w.shape[-1]).flatten(2).transpose(1, 2)
    n, t, d = x.shape
    x = torch.cat([sd["visual.class_embedding"].expand(n, 1, d), x], dim=1) + sd["visual.positional_embedding"]

    def ln(v, p):
        return F.layer_norm(v, (d,), sd[f"{p}.weight"], sd[f"{p}.bias"], 1e-5)

    x = ln(x, "visual.ln_pre")
    i = 0
    while f"visual.transformer.resblocks.{i}.ln_1.weight" in sd:
        p = f"visual.transformer.resblocks.{i}"
        h = ln(x, f"{p}.ln_1")
        q, k, v = (h @ sd[f"{p}.attn.in_proj_weight"].T + sd[f"{p}.attn.in_proj_bias"]).chunk(3, dim=-1)
        split = lambda z: z.reshape(n, -1, heads, d // heads).transpose(1, 2)  # noqa: E731
        att = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d // heads), dim=-1) @ split(v)
        att = att.transpose(1, 2).reshape(n, -1, d)
        x = x + att @ sd[f"{p}.attn.out_proj.weight"].T + sd[f"{p}.attn.out_proj.bias"]
        h = ln(x, f"{p}.ln_2") @ sd[f"{p}.mlp.c_fc.weight"].T + sd[f"{p}.mlp.c_fc.bias"]
        h = h * torch.sigmoid(1.702 * h)
        x = x + h @ sd[f"{p}.mlp.c_proj.weight"].T + sd[f"{p}.mlp.c_proj.bias"]
        i += 1
    feats = ln(x[:, 0], "visual.ln_post") @ sd["visual.proj"]
    return feats @ sd["fc.weight"].T + sd["fc.bias"]


def ref_xception_logits(sd, x):
    def sep(v, p):
        v = F.conv2d(v, sd[f"{p}.conv1.weight"], padding=1, groups=v.shape[1])
        return F.conv2d(v, sd[f"{p}.pointwise.weight"])

    x = F.relu(f_bn(sd, "backbone.bn1", F.conv2d(x, sd["backbone.conv1.weight"], stride=2)))
    x = F.relu(f_bn(sd, "backbone.bn2", F.conv2d(x, sd["backbone.conv2.weight"])))
    for i, (cin, cout, reps, stride, relu0, grow) in enumerate(XCEPTION_BLOCKS, start=1):
        p = f"backbone.block{i}"
        seq = xception_rep(cin, cout, reps, grow)
        h = x
        for n, ((kind, _, _), j) in enumerate(zip(seq, xception_indices(relu0, seq))):
            if kind == "sep":
                h = sep(h if (n == 0 and not relu0) else F.relu(h), f"{p}.rep.{j}")
            else:
                h = f_bn(sd, f"{p}.rep.{j}", h)
        if stride != 1:
            h = F.max_pool2d(h, 3, stride, 1)
        skip = f_bn(sd, f"{p}.skipbn", F.conv2d(x, sd[f"{p}.skip.weight"], stride=stride)) if f"{p}.skip.weight" in sd else x
        x = h + skip
    x = F.relu(f_bn(sd, "backbone.bn3", sep(x, "backbone.conv3")))
    x = F.relu(f_bn(sd, "backbone.bn4", sep(x, "backbone.conv4")))
    return x.mean(dim=(2, 3)) @ sd["backbone.last_linear.weight"].T + sd["backbone.last_linear.bias"]


def tf_same(size: int, k: int, s: int) -> tuple[int, int]:
    """TF 'same' padding (before, after) for a nominal input size."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def ref_effb4_logits(sd, x):
    p = "backbone.efficientnet"
    swish = lambda v: v * torch.sigmoid(v)  # noqa: E731

    def bn3(v, name):
        return f_bn(sd, name, v, eps=1e-3)

    x = swish(bn3(F.conv2d(x, sd[f"{p}._conv_stem.weight"], stride=2), f"{p}._bn0"))  # DeepfakeBench: no padding
    nominal = 190  # lukemelas sizes every static padding for 380 px input
    for i, (k, s, e, cin, cout) in enumerate(b4_blocks()):
        b = f"{p}._blocks.{i}"
        h = x
        if e != 1:
            h = swish(bn3(F.conv2d(h, sd[f"{b}._expand_conv.weight"]), f"{b}._bn0"))
        lo, hi = tf_same(nominal, k, s)
        h = F.conv2d(F.pad(h, (lo, hi, lo, hi)), sd[f"{b}._depthwise_conv.weight"], stride=s, groups=h.shape[1])
        h = swish(bn3(h, f"{b}._bn1"))
        z = h.mean(dim=(2, 3), keepdim=True)
        z = F.conv2d(swish(F.conv2d(z, sd[f"{b}._se_reduce.weight"], sd[f"{b}._se_reduce.bias"])),
                     sd[f"{b}._se_expand.weight"], sd[f"{b}._se_expand.bias"])
        h = bn3(F.conv2d(torch.sigmoid(z) * h, sd[f"{b}._project_conv.weight"]), f"{b}._bn2")
        x = h + x if (s == 1 and cin == cout) else h
        nominal = -(-nominal // s)
    x = swish(bn3(F.conv2d(x, sd[f"{p}._conv_head.weight"]), f"{p}._bn1"))
    return x.mean(dim=(2, 3)) @ sd["backbone.last_layer.weight"].T + sd["backbone.last_layer.bias"]


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("arch,shapes,npr", [
    ("cnndetection-resnet50", torchvision_resnet50(), False),
    ("npr-resnet50", torchvision_resnet50(stem="3x3", stages=2, fc="fc1"), True),
])
def test_resnet_checkpoints_load_strict_and_match_the_upstream_forward(tmp_path, arch, shapes, npr) -> None:
    a = registry.architecture(arch)
    assert shapes_of(a.build()) == shapes  # every upstream name and shape, nothing more
    state = random_state(shapes, seed=1)
    # CNNDetection saves {"model": state_dict}; NPR a bare state dict saved from DataParallel ("module.")
    payload = {f"module.{k}": v for k, v in state.items()} if npr else {"model": state, "epoch": torch.tensor(3)}
    torch.save(payload, tmp_path / "w.pth")
    model = load_via_manifest(tmp_path, {"name": "x", "architecture": arch, "file": "w.pth",
                                         "sha256": sha(tmp_path / "w.pth"), "licence": "test"})
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    ref = ref_resnet(state, x, npr=npr)
    out = model(x)
    assert out.shape == (2, 1)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_universalfakedetect_full_size_names_and_shapes() -> None:
    with torch.device("meta"):
        model = UniversalFakeDetect()  # ViT-L/14: 304M parameters, built without memory
    expected = openai_clip_visual(width=1024, layers=24, patch=14, resolution=224, out=768)
    expected.update({"fc.weight": (1, 768), "fc.bias": (1,)})
    assert shapes_of(model) == expected


def test_universalfakedetect_reads_fc_weights_and_a_clip_file_and_matches(tmp_path) -> None:
    cfg = VitConfig(input_resolution=56, patch_size=14, width=64, layers=2, heads=4, output_dim=32)  # same code path
    visual = random_state(openai_clip_visual(64, 2, 14, 56, 32), seed=3)
    text = {"token_embedding.weight": torch.randn(10, 8), "transformer.resblocks.0.ln_1.weight": torch.ones(8),
            "logit_scale": torch.tensor(1.0)}
    torch.save({**visual, **text}, tmp_path / "clip.pt")  # a whole CLIP state dict: the text tower is dropped
    head = {"weight": torch.randn(1, 32) * 0.1, "bias": torch.randn(1)}
    torch.save(head, tmp_path / "fc_weights.pth")
    entry = mf.Entry(name="ufd", architecture="universalfakedetect-clip-vit-l14", file="fc_weights.pth",
                     sha256=sha(tmp_path / "fc_weights.pth"), licence="test", backbone_file="clip.pt",
                     backbone_sha256=sha(tmp_path / "clip.pt"))
    state = registry.architecture(entry.architecture).read(mf.verify(entry, tmp_path))
    model = UniversalFakeDetect(cfg)
    model.load_state_dict(state, strict=True)
    model = model.double().eval()
    x = torch.randn(2, 3, 56, 56, dtype=torch.float64)
    sd = {k: v.double() for k, v in {**visual, "fc.weight": head["weight"], "fc.bias": head["bias"]}.items()}
    torch.testing.assert_close(model(x), ref_vit_logit(sd, x, heads=4), rtol=1e-9, atol=1e-9)
    # without the backbone the adapter refuses loudly
    with pytest.raises(ValueError, match="backbone"):
        registry.architecture(entry.architecture).read({"weights": tmp_path / "fc_weights.pth"})


@pytest.mark.parametrize("arch,shapes,ref", [
    ("deepfakebench-xception", deepfakebench_xception(), ref_xception_logits),
    ("deepfakebench-efficientnetb4", deepfakebench_effb4(), ref_effb4_logits),
])
def test_deepfakebench_checkpoints_load_strict_and_match_the_upstream_forward(tmp_path, arch, shapes, ref) -> None:
    a = registry.architecture(arch)
    assert shapes_of(a.build()) == shapes
    state = random_state(shapes, seed=4)
    torch.save(state, tmp_path / "ckpt.pth")
    model = load_via_manifest(tmp_path, {"name": "f", "architecture": arch, "file": "ckpt.pth",
                                         "sha256": sha(tmp_path / "ckpt.pth"), "licence": "test"})
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(5))  # 256 in use; any size works
    logits = model(x)
    expected = ref(state, x)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)
    p = registry.probabilities(a, logits)
    torch.testing.assert_close(p, torch.softmax(expected, 1)[:, 1].float(), rtol=1e-5, atol=1e-6)


def test_a_checkpoint_with_a_wrong_or_extra_tensor_is_refused(tmp_path) -> None:
    a = registry.architecture("npr-resnet50")
    state = random_state(torchvision_resnet50(stem="3x3", stages=2, fc="fc1"), seed=6)
    bad = dict(state, **{"fc1.weight": torch.zeros(1, 256)})
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="size mismatch"):
        registry.build_loaded(a, {"weights": tmp_path / "bad.pth"})
    torch.save(dict(state, **{"layer3.0.conv1.weight": torch.zeros(1)}), tmp_path / "extra.pth")
    with pytest.raises(RuntimeError, match="Unexpected key"):
        registry.build_loaded(a, {"weights": tmp_path / "extra.pth"})
