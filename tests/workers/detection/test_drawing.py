"""workers.detection.drawing: annotated.png, drawn from a detection job's upload and result (Pillow only)."""

import io
import random

from PIL import Image

from support import images
from workers.detection import drawing

BOX = {"label": "person", "confidence": 0.91, "box": [100.0, 120.0, 500.0, 600.0]}


def open_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.convert("RGB")


def test_boxes_are_drawn_where_the_result_says() -> None:
    data = images.photo("zidane.jpg")
    drawn = open_png(drawing.annotate(data, {"image": {"width": 1280, "height": 720}, "detections": [BOX]}))
    plain = drawing.upright(data)
    assert drawn.size == plain.size == (1280, 720)
    edge = [(x, 120) for x in range(110, 490, 10)] + [(100, y) for y in range(130, 590, 10)]
    assert all(drawn.getpixel(p) != plain.getpixel(p) for p in edge)  # the box's top and left edges
    assert drawn.getpixel((300, 400)) == plain.getpixel((300, 400))  # inside the box: the photo


def test_large_images_are_drawn_at_most_annotated_max_pixels() -> None:
    result = {"image": {"width": 4096, "height": 1024}, "detections": [{**BOX, "box": [2048.0, 0.0, 4096.0, 1024.0]}]}
    drawn = open_png(drawing.annotate(images.scene(4096, 1024, "JPEG"), result, max_pixels=1_048_576))
    assert drawn.size == (2048, 512)
    plain = drawing.upright(images.scene(4096, 1024, "JPEG"), max_pixels=1_048_576)
    assert drawn.getpixel((1024 + 40, 511)) != plain.getpixel((1024 + 40, 511))  # the bottom edge, scaled


def test_fit_keeps_proportions_under_the_pixel_cap() -> None:
    assert drawing.fit((8000, 4999), 4_000_000) == (2530, 1580)
    assert drawing.fit((640, 480), 4_000_000) == (640, 480)
    assert drawing.fit((100_000, 1), 10) == (10, 1)


def test_a_preview_is_made_only_past_the_cap_as_a_scaled_jpeg() -> None:
    assert drawing.preview(drawing.upright(images.scene(640, 480, "PNG")), max_pixels=640 * 480) is None
    made = drawing.preview(Image.open(io.BytesIO(images.scene(3000, 2000, "PNG"))).convert("RGB"), max_pixels=600_000)
    assert made is not None
    with Image.open(io.BytesIO(made)) as opened:
        assert opened.format == "JPEG" and opened.size == (948, 632)
        red = opened.convert("RGB").getpixel((300, 316))  # inside the red rectangle, scaled
        assert all(abs(a - b) < 8 for a, b in zip(red, (200, 40, 40), strict=True)), red


def test_a_preview_is_never_larger_than_the_upload_its_owner_reserved() -> None:
    """Random 4-pixel stripes, every row alike: a 47 KB PNG, a 381 KB JPEG preview. The preview shrinks until
    it fits the upload's size, which the owner's kept bytes (UPLOAD_BYTES_KEPT) reserved and checked at submit."""
    rnd = random.Random(1)
    row = bytes(b for _ in range(1000) for b in [rnd.randrange(256) for _ in range(3)] * 4)
    image = Image.frombytes("RGB", (4000, 3000), row * 3000)
    upload = io.BytesIO()
    image.save(upload, format="PNG", optimize=True)
    assert len(drawing.preview(image, max_pixels=1_200_000) or b"") > upload.tell()  # what it would have kept
    made = drawing.preview(image, max_pixels=1_200_000, max_bytes=upload.tell())
    assert made is not None and len(made) <= upload.tell()
    with Image.open(io.BytesIO(made)) as opened:
        assert opened.format == "JPEG" and opened.width * opened.height <= 1_200_000


def test_exif_orientation_is_applied_as_detection_saw_it() -> None:
    data = images.scene(640, 320, "JPEG", orientation=6)
    drawn = open_png(drawing.annotate(data, {"image": {"width": 320, "height": 640}, "detections": []}))
    assert drawn.size == (320, 640)
