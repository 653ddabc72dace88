"""Uploaded bytes → validated PIL image → the tensor a model consumes, as its card says."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, ImageOps

from convscope.config import Settings
from convscope.errors import ImageTooLarge, InvalidImage, size_text
from convscope.normalisation import normalise

Array = npt.NDArray[np.float32]  # H, W, C pixels in [0, 255] unless said otherwise

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
READABLE = "ConvScope reads PNG, JPEG, WebP, GIF and BMP."
FRAMINGS = ("mnist-digit", "mnist-object", "resize-crop")
MB = 1024 * 1024
# Things people upload by mistake, known by their first bytes so that the error can name them.
NOT_IMAGES = {b"%PDF": "a PDF document", b"II*\x00": "a TIFF image", b"MM\x00*": "a TIFF image"}
# ITU-R 601 luma: the weights of PIL's convert("L").
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# MNIST fitted each digit into a 20×20 box of its 28×28 field (LeCun, Cortes & Burges).
DIGIT_BOX = 20 / 28
# Share of the paper-to-ink range removed along with the paper, so the paper's grain goes too.
PAPER_MARGIN = 0.2
# Less contrast than this (of 255) between paper and the brightest ink means a blank page.
MIN_CONTRAST = 24.0


@dataclass(frozen=True)
class InputSpec:
    """What a model expects, from its model card's "input" section."""

    channels: int  # 1 or 3
    height: int
    width: int
    mean: tuple[float, ...]  # per channel, applied after scaling pixels to [0, 1]
    std: tuple[float, ...]
    framing: str = "resize-crop"  # "mnist-digit" | "mnist-object" | "resize-crop"

    def __post_init__(self) -> None:
        # A bad card is a bug in the model, caught when the spec is built, not on some upload.
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} value(s) each")
        if min(self.std) <= 0 or self.height < 1 or self.width < 1:
            raise ValueError("std must be positive and the size at least 1×1")
        if self.framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, not {self.framing!r}")

    @classmethod
    def from_card(cls, card_input: dict[str, Any]) -> InputSpec:
        """The spec written in a model card's "input" section."""
        return cls(
            channels=int(card_input["channels"]),
            height=int(card_input["height"]),
            width=int(card_input["width"]),
            mean=tuple(float(m) for m in card_input["mean"]),
            std=tuple(float(s) for s in card_input["std"]),
            framing=str(card_input.get("framing", "resize-crop")),
        )

    @property
    def mode(self) -> str:
        """The PIL mode of a prepared image: 'L' or 'RGB'."""
        return "L" if self.channels == 1 else "RGB"


def decode_image(data: bytes, settings: Settings) -> Image.Image:
    """bytes -> validated, EXIF-oriented, first-frame PIL image (mode RGB, RGBA, L or LA)."""
    if not data:
        raise InvalidImage(f"The upload is empty: there is no image in it. {READABLE}")
    if len(data) > settings.max_upload_bytes:
        raise ImageTooLarge(
            f"The upload is {size_text(len(data))}, over the limit of "
            f"{size_text(settings.max_upload_bytes)}. Send a smaller image."
        )
    image = _open(data, settings)
    try:
        image.load()  # Image.open read only the header; a truncated or corrupt file fails here
    except Exception:  # PIL's decoders raise OSError, SyntaxError, ValueError... on bad bytes
        raise InvalidImage("The image file is truncated or corrupt. Try saving it again.") from None
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # broken EXIF does not spoil the pixels: keep the image as it was stored
        pass
    return _normalise_mode(image)


def _open(data: bytes, settings: Settings) -> Image.Image:
    """The image with its header read and its pixels not yet decoded, if its size is allowed."""
    for signature, what in NOT_IMAGES.items():
        if data.startswith(signature):
            raise InvalidImage(f"This looks like {what}, not an image. {READABLE}")
    limit = f"the limit is {settings.max_image_pixels / 1e6:.1f} megapixels"
    with warnings.catch_warnings():
        # PIL warns above its own global limit; the settings' limit, checked below, is the policy.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        except Image.DecompressionBombError:
            raise ImageTooLarge(f"The image has far too many pixels to open; {limit}.") from None
        except Exception:
            what = _describe(data)
            raise InvalidImage(f"{what} not an image ConvScope can read. {READABLE}") from None
    width, height = image.size
    if width * height > settings.max_image_pixels:
        size = f"{width}×{height} pixels ({width * height / 1e6:.1f} megapixels)"
        raise ImageTooLarge(f"The image is {size}; {limit}.")
    if width * height == 0:
        raise InvalidImage("The image is 0 pixels wide or high: there is nothing to look at.")
    return image


def _describe(data: bytes) -> str:
    """What the unreadable upload seems to be, to open the error sentence."""
    head = data[:512]
    if b"<svg" in head.lower():
        return "This looks like an SVG drawing,"
    # Text has no NUL bytes and is UTF-8 (one bad character allowed: a cut at 512 bytes).
    if b"\x00" not in head and head.decode("utf-8", errors="replace").count("\ufffd") <= 1:
        return "This looks like text,"
    return "The upload is"


def _normalise_mode(image: Image.Image) -> Image.Image:
    """The image in mode L, LA, RGB or RGBA, any transparency turned into an alpha band."""
    if image.mode.startswith("I") or image.mode == "F":
        return _eight_bit(image)
    alpha = image.has_transparency_data  # alpha band, or a palette/tRNS transparent colour
    grey = image.mode in ("1", "L", "LA", "La")
    target = ("LA" if alpha else "L") if grey else ("RGBA" if alpha else "RGB")
    return image if image.mode == target else image.convert(target)


def _eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float greyscale image scaled (not clipped) to 8-bit mode L."""
    pixels = np.asarray(image, dtype=np.float64)
    top = float(pixels.max(initial=0.0))
    if image.mode.startswith("I;16"):
        full = 65535.0
    elif image.mode == "F" and top <= 1.0:
        full = 1.0  # float images normally hold [0, 1]
    else:  # mode I has no declared depth: take the smallest usual one that holds the data
        full = 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
    return Image.fromarray(np.clip(pixels * (255 / full), 0, 255).round().astype(np.uint8))


def prepare_image(image: Image.Image, spec: InputSpec) -> Image.Image:
    """-> PIL image of exactly spec.width×spec.height in mode 'L' (1 channel) or 'RGB' (3)."""
    image = _flatten_alpha(_normalise_mode(image)).convert(spec.mode)
    if spec.framing == "resize-crop":
        return _resize_crop(image, spec)
    return _frame_mnist(image, spec)


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """The image laid on black if its visible content is light, else on white: it stays visible."""
    if image.mode not in ("LA", "RGBA"):
        return image
    sample = _to_array(_shrunk(image, 256, 256))  # enough pixels to tell light from dark
    colour, alpha = sample[..., :-1], sample[..., -1] / 255
    weight = float(alpha.sum())
    # Fully transparent: nothing is visible, and black is what a blank input is in MNIST.
    light = weight == 0 or float((_luma(colour) * alpha).sum()) / weight > 127.5
    flat = Image.new(image.mode[:-1], image.size, "black" if light else "white")
    flat.paste(image.convert(flat.mode), mask=image.getchannel("A"))
    return flat


def _resize_crop(image: Image.Image, spec: InputSpec) -> Image.Image:
    """The centre of the image, at the target's aspect ratio, resized to the target size."""
    scale = max(spec.width / image.width, spec.height / image.height)
    width, height = spec.width / scale, spec.height / scale  # the part of the source that is kept
    left, top = (image.width - width) / 2, (image.height - height) / 2
    box = (left, top, left + width, top + height)
    # reducing_gap: a fast box reduction first, then Lanczos for the last factor of 3 at most
    return image.resize((spec.width, spec.height), Image.Resampling.LANCZOS, box, reducing_gap=3.0)


def _frame_mnist(image: Image.Image, spec: InputSpec) -> Image.Image:
    """A light object centred on black, framed as MNIST (digit) or Fashion-MNIST (object) were."""
    exact = image.size == (spec.width, spec.height)
    # 32 times the target is plenty to find and frame the object, and bounds the memory used.
    pixels = _to_array(image if exact else _shrunk(image, 32 * spec.width, 32 * spec.height))
    if np.median(_border(_luma(pixels))) > 127.5:
        pixels = 255 - pixels  # ink on paper, product on white: the datasets are light on black
    if exact:
        return _to_image(pixels)  # already in the dataset's form: a shipped sample stays as it is
    ink = _remove_paper(pixels)
    if ink is None:
        return Image.new(spec.mode, (spec.width, spec.height))  # blank page: all black
    rows, cols = np.nonzero(_luma(ink) > 0)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    if spec.framing == "mnist-digit":
        box = round(spec.width * DIGIT_BOX), round(spec.height * DIGIT_BOX)
        patch = _to_array(_fitted(_to_image(crop), *box))
        top, left = _centre_of_mass_offset(patch, spec)
    else:  # Fashion-MNIST: longest edge to the full size, box centred
        patch = _to_array(_fitted(_to_image(crop), spec.width, spec.height))
        top, left = (spec.height - patch.shape[0]) // 2, (spec.width - patch.shape[1]) // 2
    canvas = np.zeros((spec.height, spec.width, spec.channels), dtype=np.float32)
    canvas[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return _to_image(canvas)


def _remove_paper(pixels: Array) -> Array | None:
    """The ink alone: paper level taken away, stretched so the brightest is 255; None if blank."""
    luma = _luma(pixels)
    paper, brightest = float(np.median(_border(luma))), float(luma.max())
    if brightest - paper < MIN_CONTRAST:
        return None
    ink: Array = np.clip(pixels - (paper + PAPER_MARGIN * (brightest - paper)), 0, None)
    return ink * np.float32(255 / ink.max())


def _fitted(image: Image.Image, box_width: int, box_height: int) -> Image.Image:
    """The image resized, aspect ratio kept, until one side fills a box_width×box_height box."""
    scale = min(box_width / image.width, box_height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _shrunk(image: Image.Image, box_width: int, box_height: int) -> Image.Image:
    """The image reduced, aspect ratio kept, to fit a box_width×box_height box, if it does not."""
    if image.width <= box_width and image.height <= box_height:
        return image
    return _fitted(image, box_width, box_height)


def _centre_of_mass_offset(patch: Array, spec: InputSpec) -> tuple[int, int]:
    """Top-left corner putting the patch's centre of mass on the canvas centre, patch kept whole."""
    mass = _luma(patch).astype(np.float64)
    height, width = mass.shape
    total = mass.sum()
    if total == 0:
        return (spec.height - height) // 2, (spec.width - width) // 2
    rows, cols = np.indices(mass.shape)
    centre_row, centre_col = (rows * mass).sum() / total, (cols * mass).sum() / total
    top = round((spec.height - 1) / 2 - centre_row)
    left = round((spec.width - 1) / 2 - centre_col)
    return min(max(top, 0), spec.height - height), min(max(left, 0), spec.width - width)


def _border(luma: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The outer ring of pixels, about 5% of the shorter side thick: where the paper shows."""
    k = max(1, min(luma.shape) // 20)
    return np.concatenate([luma[:k], luma[-k:], luma[:, :k].T, luma[:, -k:].T], axis=None)


def _luma(pixels: Array) -> npt.NDArray[np.float32]:
    """H, W luminance of H, W, C pixels (C = 1 or 3)."""
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels @ LUMA


def _to_array(image: Image.Image) -> Array:
    """H, W, C float32 pixels of an 8-bit image."""
    pixels = np.asarray(image, dtype=np.float32)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _to_image(pixels: npt.NDArray[np.floating[Any]]) -> Image.Image:
    """The 8-bit L or RGB image of H, W, 1 or 3 float pixels, rounded and clipped to [0, 255]."""
    data = np.clip(pixels, 0, 255).round().astype(np.uint8)
    return Image.fromarray(data[..., 0] if data.shape[-1] == 1 else data)


def to_tensor(image: Image.Image, spec: InputSpec) -> torch.Tensor:
    """-> float32 [1, C, H, W], pixels/255 then (x - mean) / std."""
    if image.size != (spec.width, spec.height) or image.mode != spec.mode:
        raise ValueError(f"to_tensor takes prepare_image's output, not a {image.size} {image.mode}")
    pixels = _to_array(image).transpose(2, 0, 1) / 255  # C, H, W
    return normalise(torch.from_numpy(np.ascontiguousarray(pixels)), spec.mean, spec.std).unsqueeze(0)


def load_image(data: bytes, spec: InputSpec, settings: Settings) -> torch.Tensor:
    """The whole pipeline: decode_image → prepare_image → to_tensor."""
    return to_tensor(prepare_image(decode_image(data, settings), spec), spec)
