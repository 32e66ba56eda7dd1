"""``gancodec demo``: the codec end to end on one image, against JPEG at the same byte count.

Compresses the image at every quality level, decodes with both decoders, writes the .gcz
files, the reconstructions and one side-by-side PNG per quality (original | ours-MSE |
ours-GAN | JPEG of the same size, with zoomed crops), and prints a table of measured numbers.
The default image is scikit-image's ``astronaut`` (NASA, public domain), which ships with it.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .imageio import load_rgb_array, save_image, write_bytes
from .metrics import ms_ssim, psnr
from .visual import labelled_row, stack_rows, zoom


def bundled_image() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def jpeg_at_bytes(rgb: np.ndarray, target: int) -> tuple[bytes, int]:
    """The largest-quality Pillow JPEG not bigger than ``target`` bytes (or the smallest one).

    Uses the evaluation harness's matched-size search, so the demo and ``gancodec compare``
    pick JPEG settings the same way."""
    from .evaluation.codecs import make_codec
    from .evaluation.compare import match_size

    quality, data, _, _ = match_size(make_codec("jpeg"), rgb, target)
    return data, int(quality)


def _decode_jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def run_demo(image: str | None = None, out_dir: Path = Path("gancodec-demo"), model: str | None = None) -> int:
    import gancodec

    codec = gancodec.load_model(model or "hific-lite")
    rgb = load_rgb_array(image) if image else bundled_image()
    out_dir.mkdir(parents=True, exist_ok=True)
    save_image(out_dir / "original.png", rgb)
    h, w = rgb.shape[:2]
    s = min(h, w) // 4
    box = (h // 2 - s // 2, w // 2 - s // 2, s, s)
    print(f"gancodec demo: {codec.model_id}, image {w}×{h}, decoders: {', '.join(codec.decoders)}")
    header = (f"{'quality':>7} {'bytes':>7} {'bpp':>6} {'PSNR':>6} {'MS-SSIM':>7} {'PSNR-gan':>8} "
              f"{'enc s':>6} {'dec s':>6} | {'JPEG q':>6} {'bytes':>7} {'PSNR':>6} {'MS-SSIM':>7}")
    print(header)
    print("-" * len(header))
    for level in range(1, codec.levels + 1):
        t0 = time.perf_counter()
        data = codec.compress(rgb, quality=level)
        t1 = time.perf_counter()
        rec = codec.decompress(data, decoder="mse")
        t2 = time.perf_counter()
        write_bytes(out_dir / f"q{level}.gcz", data)
        save_image(out_dir / f"q{level}_mse.png", rec)
        row_images, labels = [rgb, rec], ["original", f"gancodec mse  {len(data)} B"]
        gan_psnr = float("nan")
        if "gan" in codec.decoders:
            rec_gan = codec.decompress(data, decoder="gan")
            save_image(out_dir / f"q{level}_gan.png", rec_gan)
            gan_psnr = psnr(rgb, rec_gan)
            row_images.append(rec_gan)
            labels.append(f"gancodec gan  {len(data)} B")
        jpeg, jq = jpeg_at_bytes(rgb, len(data))
        jrec = _decode_jpeg(jpeg)
        row_images.append(jrec)
        labels.append(f"JPEG q{jq}  {len(jpeg)} B")
        crops = [zoom(im, box, 2) for im in row_images]
        grid = stack_rows([labelled_row(row_images, labels), labelled_row(crops, ["zoom ×2"] * len(crops))])
        save_image(out_dir / f"q{level}_side_by_side.png", grid)
        print(f"{level:>7} {len(data):>7} {8 * len(data) / (h * w):>6.3f} {psnr(rgb, rec):>6.2f} "
              f"{ms_ssim(rgb, rec):>7.4f} {gan_psnr:>8.2f} {t1 - t0:>6.2f} {t2 - t1:>6.2f} | "
              f"{jq:>6} {len(jpeg):>7} {psnr(rgb, jrec):>6.2f} {ms_ssim(rgb, jrec):>7.4f}")
    print(f"wrote .gcz files, reconstructions and side-by-side PNGs to {out_dir}/")
    return 0
