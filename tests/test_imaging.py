"""Tests of app/imaging.py: every image is made here, in memory, with PIL."""

import io
import random
import struct
import tracemalloc
import warnings
import zlib
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFile

from convscope.config import Settings
from convscope.errors import ImageTooLarge, InvalidImage
from convscope.imaging import InputSpec, decode_image, load_image, prepare_image, to_tensor

SETTINGS = Settings()
MNIST = InputSpec(1, 28, 28, mean=(0.1307,), std=(0.3081,), framing="mnist-digit")
FASHION = InputSpec(1, 28, 28, mean=(0.286,), std=(0.353,), framing="mnist-object")
RGB32 = InputSpec(channels=3, height=32, width=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
GREY16 = InputSpec(channels=1, height=16, width=16, mean=(0.5,), std=(0.5,))
RGB16 = InputSpec(channels=3, height=16, width=16, mean=(0.5,) * 3, std=(0.5,) * 3)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    """The image saved in a format, as the bytes of an upload."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB image of random pixels: it compresses badly, so files are big and truncations bite."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int32)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def one_bit_png(side: int, rows: int) -> bytes:
    """A black side×side 1-bit PNG written by hand, with pixel data for only `rows` rows."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + 8 pixels a byte
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


# --- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_accepts_every_format(fmt: str) -> None:
    data = encode(Image.new("RGB", (40, 30), (200, 60, 120)), fmt)
    image = decode_image(data, SETTINGS)
    assert image.size == (40, 30)
    colour = pixels(image.convert("RGB"))[15, 20]
    assert np.abs(colour - [200, 60, 120]).max() <= 12  # JPEG is lossy, GIF has a palette
    tensor = load_image(data, RGB32, SETTINGS)
    assert tensor.shape == (1, 3, 32, 32) and tensor.dtype == torch.float32
    assert tensor.min() >= -2 and tensor.max() <= 2  # (0 - 0.5) / 0.25 .. (1 - 0.5) / 0.25


def test_gif_takes_first_frame() -> None:
    frames = [Image.new("L", (20, 20), 255), Image.new("L", (20, 20), 0)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert getattr(Image.open(io.BytesIO(data)), "n_frames") == 2
    image = decode_image(data, SETTINGS)
    assert pixels(image.convert("L")).min() == 255


@pytest.mark.parametrize(("orientation", "corner"), [(6, (0, -1)), (8, (-1, 0))])
def test_exif_orientation_rotates_jpeg(orientation: int, corner: tuple[int, int]) -> None:
    stored = Image.new("RGB", (60, 30), (255, 255, 255))
    stored.paste((255, 0, 0), (0, 0, 10, 10))  # marks the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = decode_image(encode(stored, "JPEG", exif=exif.tobytes(), quality=95), SETTINGS)
    assert image.size == (30, 60)
    row, col = corner  # 6: turned clockwise, mark goes top-right; 8: anticlockwise, bottom-left
    red = pixels(image)[(2 if row == 0 else -3), (2 if col == 0 else -3)]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


# --- alpha, channels, normalisation -----------------------------------------------------------


def stroke_on_transparent(colour: int) -> Image.Image:
    image = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    ImageDraw.Draw(image).line((8, 2, 8, 13), fill=(colour, colour, colour, 255), width=3)
    return image


@pytest.mark.parametrize("spec", [GREY16, RGB16], ids=["grey", "rgb"])
def test_alpha_white_stroke_is_laid_on_black(spec: InputSpec) -> None:
    image = prepare_image(decode_image(encode(stroke_on_transparent(255), "PNG"), SETTINGS), spec)
    assert (pixels(image)[8, 8] == 255).all() and (pixels(image)[0, 0] == 0).all()


@pytest.mark.parametrize("spec", [GREY16, RGB16], ids=["grey", "rgb"])
def test_alpha_black_stroke_is_laid_on_white(spec: InputSpec) -> None:
    image = prepare_image(decode_image(encode(stroke_on_transparent(0), "PNG"), SETTINGS), spec)
    assert (pixels(image)[8, 8] == 0).all() and (pixels(image)[0, 0] == 255).all()


@pytest.mark.parametrize("colour", [0, 255])
def test_alpha_strokes_of_either_colour_become_a_light_digit_on_black(colour: int) -> None:
    drawn = stroke_on_transparent(colour).resize((160, 160), Image.Resampling.NEAREST)
    image = pixels(prepare_image(decode_image(encode(drawn, "PNG"), SETTINGS), MNIST))
    assert image[0, 0] == 0 and image.max() == 255


def test_palette_transparency_is_laid_on_contrasting_background() -> None:
    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    ImageDraw.Draw(image).rectangle((6, 6, 9, 9), fill=1)  # white square, index 1
    for fmt in ("PNG", "GIF"):
        decoded = decode_image(encode(image, fmt, transparency=0), SETTINGS)
        assert decoded.mode == "RGBA"
        prepared = pixels(prepare_image(decoded, GREY16))
        assert prepared[8, 8] == 255 and prepared[0, 0] == 0


def test_colour_becomes_luminance_for_one_channel() -> None:
    image = prepare_image(Image.new("RGB", (16, 16), (255, 0, 0)), GREY16)
    assert image.mode == "L" and pixels(image)[0, 0] == 76  # 0.299 * 255, ITU-R 601


def test_grey_becomes_three_equal_channels() -> None:
    image = prepare_image(Image.new("L", (32, 32), 90), RGB32)
    assert image.mode == "RGB" and (pixels(image) == 90).all()


def test_normalisation_matches_mean_and_std() -> None:
    spec = InputSpec(channels=3, height=2, width=2, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.2))
    image = Image.new("RGB", (2, 2), (51, 102, 204))
    image.putpixel((1, 0), (0, 255, 10))
    expected = torch.tensor(pixels(image), dtype=torch.float32).permute(2, 0, 1) / 255
    mean, std = torch.tensor(spec.mean)[:, None, None], torch.tensor(spec.std)[:, None, None]
    expected = (expected - mean) / std
    assert torch.equal(to_tensor(image, spec), expected[None])  # the same float32 /255, - mean, / std: bit for bit


def test_to_tensor_rejects_an_unprepared_image() -> None:
    with pytest.raises(ValueError, match="prepare_image"):
        to_tensor(Image.new("RGB", (5, 5)), RGB32)


def test_input_spec_from_card() -> None:
    card = {"channels": 1, "height": 28, "width": 28, "mean": [0.1307], "std": [0.3081]}
    assert InputSpec.from_card(card) == InputSpec(1, 28, 28, (0.1307,), (0.3081,), "resize-crop")
    assert InputSpec.from_card({**card, "framing": "mnist-digit"}).framing == "mnist-digit"


@pytest.mark.parametrize(
    "change", [{"channels": 2}, {"mean": [0.1, 0.2]}, {"std": [0.0]}, {"framing": "stretch"}]
)
def test_input_spec_rejects_a_bad_card(change: dict[str, Any]) -> None:
    card = {"channels": 1, "height": 28, "width": 28, "mean": [0.1307], "std": [0.3081], **change}
    with pytest.raises(ValueError):
        InputSpec.from_card(card)


# --- framing ----------------------------------------------------------------------------------


def test_resize_crop_keeps_aspect_ratio() -> None:
    wide = Image.new("L", (200, 100), 255)
    wide.paste(0, (80, 30, 120, 70))  # a 40×40 square marker in the centre
    wide.paste(0, (0, 0, 20, 100))  # a bar at the left edge, which the crop must cut off
    image = pixels(prepare_image(wide, InputSpec(1, 50, 50, (0.5,), (0.5,))))
    rows, cols = np.nonzero(image < 128)
    assert rows.max() - rows.min() + 1 == 20 and cols.max() - cols.min() + 1 == 20  # still square
    assert rows.mean() == 24.5 and cols.mean() == 24.5  # rows and columns 15..34: integer means, exact


def paper_photo(draw: Any, size: tuple[int, int] = (600, 450)) -> bytes:
    """A JPEG 'photo' of dark ink on off-white, slightly noisy paper."""
    rng = np.random.default_rng(1)
    paper = np.array([236, 231, 220]) + rng.normal(0, 6, (size[1], size[0], 3))
    photo = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8))
    draw(ImageDraw.Draw(photo))
    return encode(photo, "JPEG", quality=90)


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, column) of an 8-bit image's centre of mass. The framing shifts an 8-bit patch by a whole number of
    pixels, round(13.5 - its centre of mass), so the result's is within half a pixel of 13.5; the sums are of
    integers, exact on both sides."""
    rows, cols = np.indices(image.shape)
    return float((rows * image).sum() / image.sum()), float((cols * image).sum() / image.sum())


def test_mnist_digit_photo_of_ink_on_paper_becomes_a_centred_light_digit() -> None:
    data = paper_photo(lambda d: d.ellipse((330, 90, 470, 330), outline=(40, 40, 60), width=28))
    image = prepare_image(decode_image(data, SETTINGS), MNIST)
    assert image.size == (28, 28) and image.mode == "L"
    digit = pixels(image)
    assert digit.max() == 255
    outside = digit.copy()
    outside[4:24, 4:24] = 0
    assert (outside == 0).all()  # black background, ink inside the central 20×20 box
    rows, cols = np.nonzero(digit)
    assert rows.max() - rows.min() + 1 == 20  # the taller side fills the box
    row, col = centre_of_mass(digit)
    assert abs(row - 13.5) <= 0.5 and abs(col - 13.5) <= 0.5  # see centre_of_mass


def test_mnist_digit_lopsided_seven_is_centred_by_mass_not_box() -> None:
    seven = (150, 100, 400, 100, 230, 380)
    data = paper_photo(lambda d: d.line(seven, fill=(20, 20, 20), width=30))
    digit = pixels(prepare_image(decode_image(data, SETTINGS), MNIST))
    row, col = centre_of_mass(digit)
    assert abs(row - 13.5) <= 0.5 and abs(col - 13.5) <= 0.5  # see centre_of_mass
    rows, cols = np.nonzero(digit)
    assert rows.min() + rows.max() != 27  # the box is off-centre, as MNIST's were


def test_mnist_object_fits_longest_edge_and_centres_the_box() -> None:
    product = Image.new("RGB", (500, 500), (255, 255, 255))
    product.paste((90, 60, 40), (100, 200, 400, 350))  # a 300×150 dark item on white
    item = pixels(prepare_image(decode_image(encode(product, "PNG"), SETTINGS), FASHION))
    rows, cols = np.nonzero(item > 0)
    assert (cols.min(), cols.max()) == (0, 27)  # longest edge fills the width
    assert rows.max() - rows.min() + 1 == 14 and rows.min() == 7  # 28 × 150/300, centred
    assert item[0, 0] == 0 and item[14, 14] == 255


def test_mnist_framing_of_a_big_photo_works_on_a_reduced_copy() -> None:
    photo = noise(4000, 3000)  # float32 copies of it would take 144 MB each
    tracemalloc.start()
    try:
        image = prepare_image(photo, MNIST)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert image.size == (28, 28) and peak < 40 * 1024 * 1024


def test_exact_size_dark_image_passes_unchanged() -> None:
    sample = np.zeros((28, 28), dtype=np.uint8)
    sample[6:22, 10:18] = np.random.default_rng(2).integers(1, 256, (16, 8))
    image = prepare_image(decode_image(encode(Image.fromarray(sample), "PNG"), SETTINGS), MNIST)
    assert np.array_equal(pixels(image), sample)
    tensor = load_image(encode(Image.fromarray(sample), "PNG"), MNIST, SETTINGS)
    # Bit for bit: float32 /255, then - mean and / std with both cast to float32, as normalise does.
    assert torch.equal(tensor[0, 0], (torch.tensor(sample) / 255 - 0.1307) / 0.3081)


def test_exact_size_light_image_is_only_inverted() -> None:
    sample = np.full((28, 28), 250, dtype=np.uint8)
    sample[8:20, 12:16] = 30
    image = prepare_image(Image.fromarray(sample), FASHION)
    assert np.array_equal(pixels(image), 255 - sample.astype(np.int32))


@pytest.mark.parametrize("spec", [MNIST, FASHION], ids=["digit", "object"])
@pytest.mark.parametrize(
    "blank",
    [
        Image.new("L", (100, 80), 255),
        Image.new("L", (100, 80), 0),
        Image.new("RGBA", (90, 90)),
        Image.new("L", (1, 1)),
    ],
    ids=["white", "black", "transparent", "one-pixel"],
)
def test_blank_image_becomes_black(spec: InputSpec, blank: Image.Image) -> None:
    image = prepare_image(decode_image(encode(blank, "PNG"), SETTINGS), spec)
    assert image.size == (28, 28) and (pixels(image) == 0).all()


@pytest.mark.parametrize(
    "mode",
    "1 P L LA La PA I;16 I;16B I F CMYK RGBA RGBa YCbCr LAB HSV".split(),
)
@pytest.mark.parametrize(
    "spec", [MNIST, FASHION, RGB32, GREY16], ids=["digit", "object", "rgb", "grey"]
)
def test_odd_modes_do_not_crash(mode: str, spec: InputSpec) -> None:
    image = Image.new(mode, (60, 40))
    ImageDraw.Draw(image).rectangle((20, 10, 40, 30), fill=1 if mode == "1" else 200)
    prepared = prepare_image(image, spec)
    assert prepared.size == (spec.width, spec.height) and prepared.mode == spec.mode


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    ramp = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    data = encode(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    image = decode_image(data, SETTINGS)
    assert image.mode == "L"
    assert np.array_equal(pixels(image), np.round(ramp / 257).astype(np.int32))
    dark = decode_image(encode(Image.fromarray(ramp // 1024), "PNG"), SETTINGS)  # 0..63 of 65535
    assert pixels(dark).max() == 0  # still 16-bit: not mistaken for an 8-bit range


@pytest.mark.parametrize(
    ("mode", "values"), [("I", [0, 1000, 65535]), ("F", [0.0, 0.5, 1.0])], ids=["int32", "float"]
)
def test_wide_modes_are_scaled_to_eight_bits(mode: str, values: list[float]) -> None:
    image = Image.new(mode, (3, 1))
    for x, value in enumerate(values):
        image.putpixel((x, 0), value)
    prepared = pixels(prepare_image(image, InputSpec(1, 1, 3, (0.5,), (0.5,))))
    assert prepared[0, 0] == 0 and prepared[0, 2] == 255 and 0 < prepared[0, 1] < 255


# --- bad uploads ------------------------------------------------------------------------------


def test_rejects_empty_upload() -> None:
    with pytest.raises(InvalidImage, match="The upload is empty"):
        decode_image(b"", SETTINGS)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_rejects_truncated_png_and_jpeg(fmt: str) -> None:
    data = encode(noise(64, 64), fmt)
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        decode_image(data[: len(data) * 3 // 5], SETTINGS)


def test_rejects_pdf() -> None:
    with pytest.raises(InvalidImage, match="looks like a PDF document") as error:
        decode_image(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n", SETTINGS)
    assert "PNG, JPEG, WebP, GIF and BMP" in error.value.detail


def test_rejects_tiff() -> None:
    with pytest.raises(InvalidImage, match="looks like a TIFF image"):
        decode_image(encode(Image.new("RGB", (8, 8)), "TIFF"), SETTINGS)


def test_rejects_text() -> None:
    with pytest.raises(InvalidImage, match="looks like text"):
        decode_image("label,pixel0\n7,0\nÜber\n".encode(), SETTINGS)


def test_rejects_random_bytes() -> None:
    with pytest.raises(InvalidImage, match="not an image ConvScope can read"):
        decode_image(random.Random(0).randbytes(4096), SETTINGS)


def test_rejects_oversized_upload() -> None:
    data = encode(noise(700, 700), "PNG")
    with pytest.raises(ImageTooLarge, match=r"The upload is 1\.\d MB, over the limit of 1\.0 MB"):
        decode_image(data, Settings(max_upload_bytes=1024 * 1024))


def test_rejects_too_many_pixels() -> None:
    data = encode(Image.new("L", (200, 100)), "PNG")
    with pytest.raises(ImageTooLarge, match="200×100 pixels"):
        decode_image(data, Settings(max_image_pixels=19_999))
    assert decode_image(data, Settings(max_image_pixels=20_000)).size == (200, 100)


@pytest.fixture
def decoded_rows(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every pixel decode: a refused bomb must never get that far."""
    calls: list[str] = []
    original = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> Any:
        calls.append(self.format or "?")
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


def test_rejects_decompression_bomb(decoded_rows: list[str]) -> None:
    bomb = one_bit_png(10_000, rows=10_000)  # 100 megapixels, all present, in a few kilobytes
    assert len(bomb) < 50_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        Image.open(io.BytesIO(bomb)).verify()  # a valid PNG: the chunks' CRCs are right
    for settings in (SETTINGS, Settings(max_image_pixels=1_000_000)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # PIL's DecompressionBombWarning must not escape
            with pytest.raises(ImageTooLarge, match="10000×10000 pixels"):
                decode_image(bomb, settings)
    assert decoded_rows == []


def test_rejects_huge_png_header(decoded_rows: list[str]) -> None:
    max_pixels = Image.MAX_IMAGE_PIXELS
    header_only = one_bit_png(50_000, rows=1)  # claims 2.5 gigapixels
    for settings in (SETTINGS, Settings(max_image_pixels=10**10)):
        with pytest.raises(ImageTooLarge, match="too many pixels"):
            decode_image(header_only, settings)
    assert decoded_rows == [] and Image.MAX_IMAGE_PIXELS == max_pixels
