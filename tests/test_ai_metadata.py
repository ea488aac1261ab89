"""AI declarations outside C2PA: IPTC XMP, diffusion front-ends' PNG text, generator names in
EXIF/XMP, and Stable Diffusion's invisible watermark written by the invisible-watermark package.

Each declaration is written into a real file the way the tool that makes it writes it, then
the whole ruleset runs over the bytes.
"""
from __future__ import annotations

import io
import json
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from server.config import Settings
from server.verdicts import Level, Verdict
from worker.pipeline.runner import analyze
from worker.stages import ai_metadata
from tests.images import photo as sample_photo
from worker.stages import watermark
from worker.stages.watermark import block_scores, decode_bits, find_sd_watermark, haar_approximation

SETTINGS = Settings(data_dir="/nonexistent-credence-test")


def photo(width: int = 512, height: int = 384, seed: int = 0) -> Image.Image:
    """Photo-like RGB pixels: gradients and grain (watermarks need texture to live in)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) % 256], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def xmp(body: str) -> bytes:
    return ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" {body}</rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()


def png_with(texts: dict[str, str], *, itxt: dict[str, str] | None = None, ztxt: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    for key, value in (itxt or {}).items():
        info.add_itxt(key, value, zip=True)
    for key, value in (ztxt or {}).items():
        info.add_text(key, value, zip=True)
    return encode(photo(64, 48), "PNG", pnginfo=info)


def ai_items(verdict: Verdict) -> list:
    return [e for e in verdict.evidence if e.supports == Level.AI_DECLARED]


def declared(data: bytes, source: str, words: str) -> Verdict:
    verdict = analyze(data, SETTINGS).verdict
    assert verdict.level == Level.AI_DECLARED, verdict.summary
    kinds = {e.kind for e in ai_items(verdict)}
    assert f"ai-{source}" in kinds, kinds
    item = [e for e in ai_items(verdict) if e.kind == f"ai-{source}"][0]
    assert words in item.summary, item.summary
    assert item.details["source"] == source and item.details["declarations"]
    return verdict


TAM = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
A1111 = ("a lighthouse at dusk, oil painting\nNegative prompt: blurry\nSteps: 30, Sampler: DPM++ 2M Karras, "
         "CFG scale: 7, Seed: 1234, Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly")
COMFY_PROMPT = json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20}},
                           "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}}})
COMFY_WORKFLOW = json.dumps({"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": []})


def test_iptc_digital_source_type_in_xmp_jpeg_and_webp() -> None:
    packet = xmp(f'Iptc4xmpExt:DigitalSourceType="{TAM}"/>')
    verdict = declared(encode(photo(64, 48), "JPEG", xmp=packet), "iptc-xmp", "made by generative AI")
    assert [e.score for e in ai_items(verdict)] == [None]
    element = xmp('><Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/'
                  'compositeWithTrainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType></rdf:Description>')
    declared(encode(photo(64, 48), "WEBP", xmp=element), "iptc-xmp", "includes generative-AI elements")


def test_iptc_xmp_in_a_compressed_png_itxt_chunk() -> None:
    packet = xmp(f'Iptc4xmpExt:DigitalSourceType="{TAM}"/>').decode()
    data = png_with({}, itxt={"XML:com.adobe.xmp": packet})
    assert TAM.encode() not in data   # compressed: only a chunk parser finds it
    declared(data, "iptc-xmp", "trained algorithmic media")


@pytest.mark.parametrize(("texts", "words"), [
    ({"parameters": A1111}, "AUTOMATIC1111"),
    ({"prompt": COMFY_PROMPT, "workflow": COMFY_WORKFLOW}, "ComfyUI"),
    ({"invokeai_metadata": json.dumps({"positive_prompt": "a cat", "steps": 30})}, "InvokeAI"),
    ({"Software": "NovelAI", "Comment": json.dumps({"prompt": "a cat", "steps": 28, "sampler": "k_euler"})}, "NovelAI"),
])
def test_png_text_of_diffusion_front_ends(texts: dict[str, str], words: str) -> None:
    verdict = declared(png_with(texts), "png-text", words)
    assert all(e.score is not None and e.score < 1 for e in ai_items(verdict))


def test_png_text_after_the_pixels_and_zipped() -> None:
    # ComfyUI and others may write text after IDAT, and zTXt compresses it.
    base = png_with({}, ztxt={"parameters": A1111})
    iend = base.rindex(b"IEND") - 4
    text = b"prompt\0" + COMFY_PROMPT.encode()
    chunk = len(text).to_bytes(4, "big") + b"tEXt" + text + zlib.crc32(b"tEXt" + text).to_bytes(4, "big")
    data = base[:iend] + chunk + base[iend:]
    verdict = declared(data, "png-text", "AUTOMATIC1111")
    fields = [d["field"] for e in ai_items(verdict) for d in e.details["declarations"]]
    assert 'PNG text "parameters"' in fields and 'PNG text "prompt"' in fields


def test_exif_software_and_a1111_user_comment() -> None:
    exif = Image.Exif()
    exif[0x0131] = "Midjourney v6"
    declared(encode(photo(64, 48), "JPEG", exif=exif), "exif", "made with Midjourney")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + A1111.encode("utf-16-be")   # how A1111 writes JPEGs
    declared(encode(photo(64, 48), "JPEG", exif=exif), "exif", "generation settings")


def test_xmp_creator_tool_of_a_known_generator() -> None:
    packet = xmp('xmp:CreatorTool="Adobe Firefly Image 3"/>')
    declared(encode(photo(64, 48), "JPEG", xmp=packet), "xmp", "made with Adobe Firefly")


def test_ordinary_metadata_stays_clean() -> None:
    exif = Image.Exif()
    exif[0x0131] = "GIMP 2.10.36"
    exif[0x010F] = "NIKON CORPORATION"
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0holiday, steps to the beach"
    packet = xmp('Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture" '
                 'xmp:CreatorTool="Adobe Photoshop 25.0 (Macintosh)"/>')
    samples = [
        encode(photo(300, 300), "JPEG", exif=exif, xmp=packet),
        png_with({"Software": "Adobe ImageReady", "parameters": "width=3, depth=8", "Comment": "{not json"}),
        encode(photo(300, 300), "WEBP"),
    ]
    for data in samples:
        verdict = analyze(data, SETTINGS).verdict
        assert verdict.level == Level.NO_EVIDENCE, verdict.summary
        assert not ai_items(verdict)


def test_hostile_png_text_is_capped() -> None:
    bomb = zlib.compress(b"A" * 50_000_000, 9)   # 50 MB of text in about 50 KB
    body = b"parameters\0\0" + bomb
    chunk = len(body).to_bytes(4, "big") + b"zTXt" + body + zlib.crc32(b"zTXt" + body).to_bytes(4, "big")
    base = png_with({})
    data = base[:33] + chunk + base[33:]
    assert len(ai_metadata.png_text(data)["parameters"]) <= 1024 * 1024
    verdict = analyze(data, SETTINGS).verdict   # Pillow refuses the bomb too: unavailable, not a crash
    assert verdict.level == Level.UNAVAILABLE and not ai_items(verdict)
    assert not [e for e in verdict.evidence if e.kind == "stage-error"]


# --------------------------------------------------------------------------- invisible watermark

@pytest.fixture(scope="module")
def imwatermark():
    """The reference package (its import pulls in torch, once)."""
    return pytest.importorskip("imwatermark")


SDXL_BITS = [int(b) for b in bin(0b101100111110110010010000011110111011000110011110)[2:]]


def marked(imwatermark, payload_type: str, payload: object, *, bgr: bool,
           base: Image.Image | None = None) -> Image.Image:
    """Watermark as the SD scripts do: CompVis/Stability hand OpenCV BGR, diffusers hands RGB."""
    rgb = np.asarray(photo(512, 512, seed=7) if base is None else base)
    encoder = imwatermark.WatermarkEncoder()
    encoder.set_watermark(payload_type, payload)
    array = rgb[:, :, ::-1].copy() if bgr else rgb.copy()
    out = encoder.encode(array, "dwtDct")
    return Image.fromarray(np.ascontiguousarray(out[:, :, ::-1] if bgr else out))


def test_our_decoder_reads_exactly_what_the_package_reads(imwatermark) -> None:
    image = marked(imwatermark, "bytes", b"StableDiffusionV1", bgr=True)
    bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
    reference = imwatermark.WatermarkDecoder("bytes", 136)
    ours = decode_bits(block_scores(np.asarray(image), "bgr"), 136)
    assert ours.tolist() == list(np.unpackbits(np.frombuffer(reference.decode(bgr, "dwtDct"), np.uint8)).astype(bool))


def test_our_haar_band_and_block_votes_are_the_packages_bit_for_bit() -> None:
    """The decoder computes only the DWT band it reads; each block's vote must still be the one the
    package's own steps (OpenCV on the handed channel order, pywt.dwt2) give, on photos and on noise
    (votes sit on exact ties often enough that one rounding difference would show)."""
    import cv2
    import pywt

    rng = np.random.default_rng(3)
    samples = [np.asarray(photo(516, 388, seed=s)) for s in range(4)]
    samples += [rng.integers(0, 256, size=(260 + 4 * k, 300, 3), dtype=np.uint8) for k in range(4)]
    for rgb in samples:
        rows, cols = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
        for order, handed in (("bgr", rgb[:, :, ::-1]), ("rgb", rgb)):
            u = cv2.cvtColor(np.ascontiguousarray(handed), cv2.COLOR_BGR2YUV)[:rows, :cols, 1]
            reference = pywt.dwt2(u, "haar")[0]
            assert np.array_equal(haar_approximation(u), reference), order
            nr, nc = reference.shape[0] // 4, reference.shape[1] // 4
            flat = reference[:nr * 4, :nc * 4].reshape(nr, 4, nc, 4).transpose(0, 2, 1, 3).reshape(-1, 16)
            pos = np.argmax(np.abs(flat[:, 1:]), axis=1) + 1
            votes = (np.abs(flat[np.arange(flat.shape[0]), pos]) % 36) > 18
            assert np.array_equal(block_scores(rgb, order), votes), order


@pytest.mark.parametrize(("payload_type", "payload", "bgr", "model"), [
    ("bytes", b"StableDiffusionV1", True, "Stable Diffusion 1.x"),
    ("bytes", b"SDV2", True, "Stable Diffusion 2.x"),
    ("bits", SDXL_BITS, False, "Stable Diffusion XL"),
])
def test_sd_watermarks_are_weak_ai_declarations(imwatermark, payload_type: str, payload: object, bgr: bool,
                                                model: str) -> None:
    data = encode(marked(imwatermark, payload_type, payload, bgr=bgr), "PNG")
    verdict = analyze(data, SETTINGS).verdict
    assert verdict.level == Level.AI_DECLARED
    [item] = ai_items(verdict)
    assert item.kind == "ai-watermark" and item.details["model"] == model
    assert 0.5 <= item.score <= 0.6 and "Weak evidence" in item.summary


def test_no_watermark_no_finding_and_size_limits() -> None:
    clean = photo(512, 512, seed=8)
    assert find_sd_watermark(clean, 10**8) is None
    assert find_sd_watermark(photo(200, 200), 10**8) is None            # below the package's minimum
    off = Settings(data_dir="/nonexistent-credence-test", watermark_max_pixels=0)
    assert "watermark" not in analyze(encode(clean, "PNG"), off).verdict.timings


def test_the_screen_reads_the_full_decoders_own_votes() -> None:
    """The screen's votes are the full decoder's votes of the same blocks, at their place in the payload."""
    rng = np.random.default_rng(5)
    for rgb in (np.asarray(photo(1030, 777, seed=2)), rng.integers(0, 256, size=(517, 300, 3), dtype=np.uint8)):
        for order in ("bgr", "rgb"):
            votes, index = watermark.screen_votes(rgb, order)
            assert index.size >= block_scores(rgb, order).size // 4
            assert np.array_equal(votes, block_scores(rgb, order)[index]), order


def noisy(image: Image.Image, sigma: float) -> Image.Image:
    rng = np.random.default_rng(int(sigma))
    pixels = np.asarray(image, dtype=np.float64) + rng.normal(0, sigma, (image.height, image.width, 3))
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))


def reencoded(image: Image.Image, quality: int) -> Image.Image:
    return Image.open(io.BytesIO(encode(image, "JPEG", quality=quality))).convert("RGB")


DEGRADED = {
    "as made": lambda im: im,
    "JPEG q95": lambda im: reencoded(im, 95), "JPEG q90": lambda im: reencoded(im, 90),
    "JPEG q80": lambda im: reencoded(im, 80),
    "resized 99%": lambda im: im.resize((round(im.width * .99), round(im.height * .99)), Image.Resampling.LANCZOS),
    "resized 101%": lambda im: im.resize((round(im.width * 1.01), round(im.height * 1.01)), Image.Resampling.BICUBIC),
    "8 rows cut": lambda im: im.crop((0, 8, im.width, im.height)),
    **{f"noise {sigma}": (lambda im, sigma=sigma: noisy(im, sigma)) for sigma in (10, 12, 13, 14, 16)},
}


def test_the_screen_drops_no_hit_of_the_full_decoder(imwatermark) -> None:
    """Full decoder hit => the same hit, same agreement, through the screen: on marks as made, re-encoded,
    resized, cropped and noisy (noise brings the full decoder's agreement down towards its thresholds)."""
    bases = (photo(512, 512, seed=7), sample_photo(3, (1024, 768)))
    hits, weakest = 0, 1.0
    for base in bases:
        for payload_type, payload, bgr in (("bytes", b"StableDiffusionV1", True), ("bytes", b"SDV2", False),
                                           ("bits", SDXL_BITS, True), ("bits", SDXL_BITS, False)):
            mark = marked(imwatermark, payload_type, payload, bgr=bgr, base=base)
            for name, degrade in DEGRADED.items():
                image = degrade(mark)
                full = watermark.read_watermark(np.asarray(image))
                assert find_sd_watermark(image, 10**8) == full, (name, payload, bgr)
                if full is not None:
                    hits, weakest = hits + 1, min(weakest, full.agreement)
                    # with a wide margin, not just past the cut-off
                    score = watermark.screen_scores(np.asarray(image), full.channel_order)[full.model]
                    assert score >= 2 * watermark.SCREEN_CUTOFF, (name, payload, bgr, score)
    assert hits >= 16 and weakest < 0.98     # hits, and some weak ones, were put through the screen


def test_the_screen_stops_on_unmarked_photos() -> None:
    """Without a mark the full decode is skipped for nearly every photo (the cost this screen saves)."""
    photos = [sample_photo(k, (1024, 768)) for k in range(0, 80, 10)] + [photo(800, 600, seed=s) for s in range(4)]
    screened_out = [all(max(watermark.screen_scores(np.asarray(im), order).values()) < watermark.SCREEN_CUTOFF
                        for order in ("bgr", "rgb")) for im in photos]
    assert sum(screened_out) >= len(photos) - 2
    assert all(find_sd_watermark(im, 10**8) is None for im in photos)
