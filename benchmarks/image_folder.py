"""Write a folder of N small generated photos (class sub-folders) to import with `dltrain datasets import`.

    PYTHONPATH=$PWD python benchmarks/image_folder.py OUT_DIR [--images 100000] [--classes 10] [--side 64] [--bad 5]

Each image is a smooth random colour gradient with a random ellipse or rectangle and mild noise, saved
as JPEG (quality 90; every tenth as PNG), so it compresses like a small photo, not like noise or a flat
colour. --bad files per run are written as unreadable (an empty .png, a truncated .jpg) to exercise
`--on-error`. Then, for example:

    /usr/bin/time -v dltrain datasets import OUT_DIR photos.h5 --on-error skip
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def picture(rng: np.random.Generator, side: int) -> Image.Image:
    t = np.linspace(0.0, 1.0, side)
    a, b = rng.integers(0, 256, (2, 3))
    angle = rng.uniform(0, np.pi)
    ramp = np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None]
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
    pixels = a + (b - a) * ramp[..., None] + rng.normal(0, 6, (side, side, 3))
    im = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    x0, y0 = rng.integers(0, side // 2, 2)
    x1, y1 = (x0, y0) + rng.integers(max(1, side // 6), max(2, side // 2), 2)
    shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
    shape((int(x0), int(y0), int(x1), int(y1)), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return im


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--bad", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    folders = [args.out / f"class{c:02d}" for c in range(args.classes)]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=False)
    bad = set(rng.choice(args.images, size=min(args.bad, args.images), replace=False).tolist())
    for i in range(args.images):
        folder = folders[i % args.classes]
        if i in bad:
            if i % 2:
                (folder / f"{i:07d}.png").write_bytes(b"")
            else:
                picture(rng, args.side).save(folder / f"{i:07d}.jpg", quality=90)
                data = (folder / f"{i:07d}.jpg").read_bytes()
                (folder / f"{i:07d}.jpg").write_bytes(data[: len(data) // 3])
            continue
        im = picture(rng, args.side)
        if i % 10 == 9:
            im.save(folder / f"{i:07d}.png")
        else:
            im.save(folder / f"{i:07d}.jpg", quality=90)
        if i % 10_000 == 9_999:
            print(f"{i + 1} images", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
