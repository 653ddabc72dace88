"""Draws the example's sample images (examples/samples/*.png): simple shapes, no data needed.

    .venv/bin/python examples/draw_samples.py

The ResNet-18 example has random weights, so no photo would be recognised anyway; these give the
page something to feed it: edges at several angles, a blob of colour, a texture.
"""

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent / "samples"


def draw() -> dict[str, Image.Image]:
    shapes = Image.new("RGB", (320, 240), (235, 232, 220))
    d = ImageDraw.Draw(shapes)
    d.ellipse((30, 40, 150, 160), fill=(200, 40, 40))
    d.rectangle((170, 60, 290, 180), fill=(40, 90, 200))
    d.polygon([(160, 20), (220, 120), (100, 120)], outline=(20, 20, 20), width=6)
    stripes = Image.new("RGB", (256, 256), "white")
    d = ImageDraw.Draw(stripes)
    for i in range(-256, 256, 24):
        d.line((i, 0, i + 256, 256), fill=(30, 30, 30), width=8)
    checker = Image.new("RGB", (224, 224))
    d = ImageDraw.Draw(checker)
    for row in range(8):
        for col in range(8):
            colour = (250, 200, 60) if (row + col) % 2 else (40, 120, 60)
            d.rectangle((col * 28, row * 28, col * 28 + 27, row * 28 + 27), fill=colour)
    return {"shapes": shapes, "stripes": stripes, "checker": checker}


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    for name, image in draw().items():
        image.save(HERE / f"{name}.png", optimize=True)
        print(HERE / f"{name}.png")
