"""The report page's tools (issue 21): forensic views on images with known edits, the worker job that makes
them, the desk routes that ask for them (and refuse bad input), and the reverse-image-search links."""
from __future__ import annotations

import io
import struct
from html import unescape
from urllib.parse import quote

import numpy as np
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image

from server import models
from server.checks import forensics as store_views
from server.checks import records
from tests.images import photo
from tests.test_desk import login, make_app, token, upload
from worker import forensics_jobs, jobs
from worker.stages import forensics


def jpeg(img: Image.Image, quality: int, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


# ---------------------------------------------------------------------------- the pure views

def test_a_spliced_region_shows_in_error_levels() -> None:
    """A block re-saved at another quality, pasted into a JPEG photo and the whole saved again, stands out when
    re-saved at the file's own quality; the same picture with one compression history throughout does not."""
    background, donor_photo = photo(5, (640, 480)), photo(6, (640, 480))
    donor = decoded(jpeg(donor_photo, 60)).crop((100, 100, 260, 260))
    spliced = decoded(jpeg(background, 75))
    spliced.paste(donor, (203, 165))  # off the 8 px grid, as a careless paste is
    inside = np.zeros((480, 640), bool)
    inside[165:325, 203:363] = True

    def contrast(levels: np.ndarray) -> float:
        return float(levels[inside].mean() / levels[~inside].mean())

    edited = forensics.ela_map(decoded(jpeg(spliced, 75)), 75)
    assert contrast(edited) > 2
    whole = background.copy()
    whole.paste(donor_photo.crop((100, 100, 260, 260)), (203, 165))  # the same content, never spliced
    consistent = forensics.ela_map(decoded(jpeg(decoded(jpeg(whole, 75)), 75)), 75)
    assert contrast(edited) > 2 * contrast(consistent), "the splice, not the block's texture, makes it stand out"
    shown = np.asarray(forensics.ela_image(decoded(jpeg(spliced, 75)), 75)).mean(axis=2)
    assert shown.shape == (480, 640) and shown[inside].mean() > 2 * shown[~inside].mean(), "the picture shows it"


@pytest.mark.parametrize("quality", [50, 75, 90, 95])
def test_estimated_quality_of_a_resaved_jpeg(quality: int) -> None:
    once = jpeg(photo(3, (320, 240)), 97)
    again = jpeg(decoded(once), quality)
    estimate = forensics.estimate_quality(forensics.quant_tables(again))
    assert abs(estimate.quality - quality) <= 5
    assert estimate.standard, "Pillow writes libjpeg's tables"


def test_custom_tables_get_their_nearest_quality_and_are_not_standard() -> None:
    base = forensics.ijg_table(forensics.IJG_LUMA, 80)
    custom = [max(1, v - 1) if i % 3 == 0 else v for i, v in enumerate(base)]  # a camera's near-80 tables
    buf = io.BytesIO()
    photo(3, (160, 120)).save(buf, "JPEG", qtables=[custom, forensics.ijg_table(forensics.IJG_CHROMA, 80)])
    data = buf.getvalue()
    estimate = forensics.estimate_quality(forensics.quant_tables(data))
    assert abs(estimate.quality - 80) <= 2 and not estimate.standard
    assert forensics.quant_tables(_png(photo(3, (32, 32)))) is None, "not a JPEG: no tables"


def test_double_compression_hint() -> None:
    twice = decoded(jpeg(decoded(jpeg(photo(4, (800, 600)), 50)), 92))
    hint = forensics.double_compression_hint(forensics.compression_ghosts(twice), 92)
    assert hint["earlier_quality"] is not None and abs(hint["earlier_quality"] - 50) <= 4
    once = decoded(jpeg(photo(4, (800, 600)), 92))
    assert forensics.double_compression_hint(forensics.compression_ghosts(once), 92)["earlier_quality"] is None


def test_noise_residual_shows_a_smoothed_patch() -> None:
    img = photo(5, (400, 300))
    patched = img.copy()
    patched.paste(img.crop((100, 100, 200, 200)).resize((25, 25)).resize((100, 100), Image.Resampling.BICUBIC),
                  (100, 100))
    residual = np.asarray(forensics.noise_residual(patched)).mean(axis=2)
    inside = np.zeros(residual.shape, bool)
    inside[104:196, 104:196] = True
    assert residual[inside].mean() < 0.5 * residual[~inside].mean(), "the blurred patch is quiet"


def _app13(datasets: dict[tuple[int, int], bytes]) -> bytes:
    """An APP13 Photoshop segment holding IPTC datasets (resource 0x0404)."""
    iptc = b"".join(b"\x1c" + bytes(k) + struct.pack(">H", len(v)) + v for k, v in datasets.items())
    if len(iptc) % 2:
        iptc += b"\x00"
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    body = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(body) + 2) + body


def tagged_jpeg() -> bytes:
    img = photo(6, (320, 240))
    exif = Image.Exif()
    exif[0x013B] = "Ada Lovelace"  # Artist
    exif[0x010F] = "Credence Test Camera"  # Make
    exif.get_ifd(0x8769)[0x9003] = "2021:02:03 04:05:06"  # DateTimeOriginal
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:City="Lyon">'
           b'<dc:subject xmlns:dc="http://purl.org/dc/elements/1.1/"><rdf:Bag><rdf:li>harbour</rdf:li>'
           b'<rdf:li>storm</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>')
    data = jpeg(img, 88, exif=exif, xmp=xmp)
    return data[:2] + _app13({(2, 120): b"Boats in the harbour", (2, 80): b"A. Photographer"}) + data[2:]


def test_metadata_table_lists_exif_xmp_and_iptc() -> None:
    rows = {(r["group"], r["tag"]): r["value"] for r in forensics.metadata_rows(tagged_jpeg())}
    assert rows[("EXIF", "Artist")] == "Ada Lovelace"
    assert rows[("EXIF", "Make")] == "Credence Test Camera"
    assert rows[("EXIF", "DateTimeOriginal")] == "2021:02:03 04:05:06"
    assert rows[("XMP", "photoshop:City")] == "Lyon"
    assert rows[("XMP", "dc:subject")] == "harbour, storm"
    assert rows[("IPTC", "Caption-Abstract")] == "Boats in the harbour"
    assert rows[("IPTC", "By-line")] == "A. Photographer"
    png = Image.new("RGB", (8, 8))
    buf = io.BytesIO()
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat, photorealistic, Steps: 20")
    png.save(buf, "PNG", pnginfo=info)
    assert {"group": "PNG", "tag": "parameters", "value": "a cat, photorealistic, Steps: 20"} in \
        forensics.metadata_rows(buf.getvalue()), "a generator's prompt in a PNG text chunk is listed"
    assert forensics.metadata_rows(b"not an image") == []


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------- the job and the desk

@pytest.fixture
def desk(data_dir):
    return make_app(data_dir)


def ask(client, sha: str):
    return client.post(f"/desk/media/{sha}/forensics", data={"csrf_token": token(client, "/desk/")},
                       headers={"X-Requested-With": "fetch", "Accept": "application/json"})


def test_views_are_asked_for_made_by_the_job_and_shown(desk) -> None:
    app, svc = desk
    client = app.test_client()
    login(client, "rosa")
    sha = upload(svc, client, tagged_jpeg(), "boats.jpg")
    page = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'id="forensics"' in page and "Make the forensic views" in page
    assert client.get(f"/desk/api/forensics/{sha}").get_json() == {"state": "none"}

    response = ask(client, sha)
    assert response.status_code == 202 and response.get_json() == {"state": "pending"}
    assert forensics_jobs.compute_forensics(svc, sha) == "done"
    assert forensics_jobs.compute_forensics(svc, sha) == "cached", "idempotent"
    answer = client.get(f"/desk/api/forensics/{sha}").get_json()
    assert answer["state"] == "ready"
    html = answer["html"]
    assert "Ada Lovelace" in html and "Boats in the harbour" in html and "Lyon" in html
    assert 'data-quality="88"' in html, "the last save's quality"
    for sentence in store_views.HOW_TO_READ.values():
        assert sentence in unescape(html), "each view says how to read it"
    result = store_views.read_result(svc.store, sha)
    for view in ("ela", "noise"):
        picture = client.get(f"/desk/blob/{result['views'][view]['sha256']}")
        assert picture.status_code == 200 and picture.mimetype == "image/png"
    page = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert "Ada Lovelace" in page and "Make the forensic views" not in page, "shown without JavaScript too"
    assert ask(client, sha).get_json() == {"state": "ready"}

    # Evicted pictures: the result is as good as missing and is made again.
    svc.store.delete(result["views"]["ela"]["sha256"])
    assert client.get(f"/desk/api/forensics/{sha}").get_json() == {"state": "none"}
    assert forensics_jobs.compute_forensics(svc, sha) == "done"


def test_routes_refuse_bad_input_and_the_job_is_bounded(desk, data_dir, monkeypatch) -> None:
    app, svc = desk
    client = app.test_client()
    assert client.post(f"/desk/media/{'a' * 64}/forensics").status_code in (302, 400), "signed in only"
    assert client.get(f"/desk/api/forensics/{'a' * 64}").status_code == 401
    login(client, "rosa")
    assert ask(client, "not-a-hash").status_code == 404
    assert ask(client, "f" * 64).status_code == 404, "unknown content"
    assert client.get(f"/desk/api/forensics/{'f' * 64}").status_code == 404
    video_sha = svc.store.put(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    with svc.db.session() as session:
        records.record_media(session, sha256=video_sha, mime="video/mp4", size=80)
    refused = ask(client, video_sha)
    assert refused.status_code == 400 and "still images" in refused.get_json()["error"]

    sha = upload(svc, client, jpeg(photo(7, (320, 240)), 85), "big.jpg")
    small, small_svc = make_app(data_dir, max_pixels="10000")  # the same record, a lower pixel cap
    other = small.test_client()
    login(other, "rosa")
    over = ask(other, sha)
    assert over.status_code == 400 and "pixel cap" in over.get_json()["error"]
    assert "No forensic views for this image" in other.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert forensics_jobs.compute_forensics(small_svc, sha) == "refused", "the job decodes within the cap too"
    assert "could not be decoded" in store_views.read_result(svc.store, sha)["error"]
    store_views.result_path(svc.store, sha).unlink()

    from worker import tasks

    assert tasks.forensic_views.soft_time_limit == svc.settings.analysis_soft_limit_s
    assert tasks.forensic_views.time_limit == svc.settings.analysis_hard_limit_s
    assert tasks.forensic_views.name == "credence.forensics"

    def slow(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(forensics, "ela_image", slow)
    assert forensics_jobs.compute_forensics(svc, sha) == "timeout"
    answer = client.get(f"/desk/api/forensics/{sha}").get_json()
    assert answer["state"] == "failed" and "took longer than" in answer["html"]


def test_search_links_by_address_and_for_uploads(desk, data_dir, media_server) -> None:
    app, svc = desk
    client = app.test_client()
    login(client, "rosa")
    url = media_server.add("/found/boats.jpg", jpeg(photo(8, (320, 240)), 85))
    response = client.post("/desk/checks", data={"urls": url}, headers={"X-CSRFToken": token(client, "/desk/"),
                                                                        "Accept": "application/json"})
    (check,) = response.get_json()["checks"]
    sha = jobs.fetch_check(svc, check["check_id"])
    jobs.analyze_media(svc, sha, owner="test")
    page = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    encoded = quote(url, safe="")
    for href in (f"https://lens.google.com/uploadbyurl?url={encoded}", f"https://tineye.com/search?url={encoded}",
                 f"https://yandex.com/images/search?rpt=imageview&amp;url={encoded}",
                 f"https://www.bing.com/images/search?view=detailv2&amp;iss=sbi&amp;q=imgurl:{encoded}"):
        assert href in page, href
    assert 'id="tools"' in page and "data-magnifier" in page and "tools.js" in page

    uploaded = upload(svc, client, jpeg(photo(9, (320, 240)), 85), "mine.jpg")
    page = client.get(f"/desk/media/{uploaded}").get_data(as_text=True)
    assert "uploadbyurl" not in page and 'href="https://lens.google.com/"' in page
    assert "upload it yourself" in page and f'href="/desk/blob/{uploaded}" download' in page

    hidden, _ = make_app(data_dir, desk_sightings="false")
    other = hidden.test_client()
    login(other, "rosa")
    assert "uploadbyurl" not in other.get(f"/desk/media/{sha}").get_data(as_text=True), \
        "no sightings shown: the address is not passed on either"
    anonymous = app.test_client().get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'id="tools"' not in anonymous and url not in anonymous


def test_tools_css_and_js_obey_the_csp(desk) -> None:
    """No inline script or style: the tools are static files, and their markup carries no style attribute."""
    app, svc = desk
    client = app.test_client()
    login(client, "rosa")
    sha = upload(svc, client, jpeg(photo(10, (200, 150)), 85), "csp.jpg")
    ask(client, sha)
    forensics_jobs.compute_forensics(svc, sha)
    page = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert "style=" not in page and "<script>" not in page and "onclick" not in page
    for name in ("tools.js", "tools.css"):
        assert client.get(f"/desk/static/{name}").status_code == 200
    with svc.db.session() as session:
        assert session.get(models.Media, sha).mime == "image/jpeg"
