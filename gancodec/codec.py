"""The runtime codec: image ⇄ ``.gcz`` bytes with a trained HiFiC-lite model.

Compression and decompression share one deterministic path for everything that decides the
bitstream: integer ẑ, the integer hyper-synthesis (:mod:`gancodec.models.integer`), scale
indices and frozen probability tables (:mod:`gancodec.entropy.coder`). The synthesis runs in
fixed point too (:class:`~gancodec.models.integer.ExactSynthesis`), so decoded pixels are
identical everywhere; only the analysis (encoder side) runs in float32. Both are tiled with
overlap so memory stays bounded on large images.

Colour handling: RGB is coded as is; greyscale is coded through the RGB model and decoded back
to one channel; an alpha channel is stored losslessly (PNG/deflate) in its own stream. An ICC
profile (always) and EXIF (on request) travel in optional metadata streams.

Hostile files: the container is validated before decoding (:mod:`gancodec.bitstream`), the
declared size is checked against ``max_pixels`` before anything of that size is allocated, and
every other value that drives work or memory (escape values, the alpha plane's declared size)
is checked against what a valid file can hold.
"""

from __future__ import annotations

import copy
import io
import json
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from .allocator import LARGE_IMAGE_PIXELS, return_free_memory, reuse_large_buffers
from .bitstream import TAG_EXIF, TAG_ICC, ColorMode, Container, Header, core_stream_count, is_icc_profile, is_tiff_exif
from .entropy import coder
from .entropy.bands import BandStore, band_spans, pack_bands, unpack_bands
from .entropy.coder import TableSet
from .entropy.context import CONTEXT_KERNEL, anchor_mask
from .errors import CorruptFileError, ModelMismatchError, UserError
from .imageio import (
    StreamedRGB,
    apply_orientation,
    has_alpha,
    is_greyscale,
    open_image,
    row_writer,
    streamed_rgb,
    to_rgb_alpha,
)
from .limits import DEFAULT_MAX_PIXELS, check_pixels
from .models.codec import CodecConfig, HiFiCLite, blended_parameters
from .models.integer import ExactSynthesis, IntegerContext, IntegerHyperSynthesis, upsampling_start
from .refine import check_steps, refine_latent
from .tiling import DiskTensor, Sink, Source, progress_bar, run_tiled, run_tiled_two_stage, uint8_source
from .zoo import REALISM_BLENDS, weights_hash

PAD_MULTIPLE = 64  # stride of z
Z_CLAMP = 2**15
# The encoder and the decoder hold the whole latent as symbols, in int16 where they fit (always
# for a real photo: quantised residuals of a few units) and int32 otherwise (a pathological
# image, a forged file's escape values): 1.25 bytes a pixel instead of 2.5, the part of their
# memory that grows with the image. An array is widened the moment a value needs it.
SYMBOL_DTYPE = np.int16
GAIN_FRACTION_BITS = 20
# Above this many pixels the encoder keeps the float32 latent (2.5 bytes a pixel, needed whole
# until the last symbol is coded) in a temporary file rather than in memory (DiskTensor).
SPILL_LATENT_PIXELS = LARGE_IMAGE_PIXELS


@dataclass
class PreparedImage:
    rgb: np.ndarray | StreamedRGB  # (H, W, 3) uint8, or a file's rows read as the analysis moves down
    mode: ColorMode
    alpha: np.ndarray | None
    icc_profile: bytes | None = None
    exif: bytes | None = None  # TIFF structure, orientation reset to 1

    def __post_init__(self) -> None:
        self.height, self.width = self.rgb.shape[:2]

    def release_pixels(self) -> None:
        """Drop this object's reference to the colour pixels (3 bytes a pixel) once they are coded."""
        if isinstance(self.rgb, StreamedRGB):
            self.rgb.close()
        self.rgb = np.empty((0, 0, 3), dtype=np.uint8)


# ICC colour spaces (header bytes 16..20) that describe the pixels we decode: a CMYK or Lab
# profile would be wrong once the image is converted to RGB, so it is dropped.
_ICC_SPACES = {False: b"RGB ", True: b"GRAY"}


def _metadata(image: Image.Image, grey: bool, keep_exif: bool) -> tuple[bytes | None, bytes | None]:
    icc = image.info.get("icc_profile")
    if not (isinstance(icc, bytes) and is_icc_profile(icc) and icc[16:20] == _ICC_SPACES[grey]):
        icc = None
    exif = image.info.get("exif") if keep_exif else None
    if isinstance(exif, bytes) and exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]  # JPEG's APP1 prefix; the format stores the TIFF structure
    if not (isinstance(exif, bytes) and is_tiff_exif(exif)):
        exif = None
    return icc, exif


def prepare_image(
    image, max_pixels: int | None = DEFAULT_MAX_PIXELS, keep_metadata: bool = False, stream: bool = False,
) -> PreparedImage:
    """Accept a path, a PIL image or a uint8 array (H, W), (H, W, 1|2|3|4). Images are made
    upright (EXIF orientation); their ICC profile is kept, and with ``keep_metadata`` their
    EXIF too. Anything above ``max_pixels`` (None: no limit) is refused. With ``stream``, a
    plain PNG file without alpha, or a large JPEG, TIFF or 16-bit PNG (turned upright as it is
    read), is not read here: its rows are read as they are analysed
    (:class:`~gancodec.imageio.StreamedRGB`)."""
    icc = exif = None
    if isinstance(image, (str, Path)):
        image = open_image(image, max_pixels, decode=False)  # a plain PNG streams below
    if isinstance(image, Image.Image):
        check_pixels(*image.size, max_pixels)
        image = apply_orientation(image)
        grey = is_greyscale(image)
        icc, exif = _metadata(image, grey, keep_metadata)
        rows = streamed_rgb(image) if stream else None
        if rows is not None:
            h, w = rows.shape[:2]
            if max(h, w) > 65535:
                rows.close()
                raise UserError(f"image is {w}×{h}; the format allows at most 65535 pixels on a side")
            return PreparedImage(rows, ColorMode.GREY if grey else ColorMode.RGB, None, icc, exif)
        rgb, alpha = to_rgb_alpha(image, has_alpha(image))  # in bands: never a second whole copy
        image = None  # Pillow's copy of the pixels (if it made one) can go now
    else:
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise UserError(f"image arrays must be uint8, got {arr.dtype}")
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
            raise UserError(f"unsupported image array shape {arr.shape}")
        check_pixels(arr.shape[1], arr.shape[0], max_pixels)
        grey = arr.shape[2] in (1, 2)
        alpha = arr[..., -1] if arr.shape[2] in (2, 4) else None
        colour = arr[..., :1] if grey else arr[..., :3]
        rgb = np.repeat(colour, 3, axis=2) if grey else colour
    if alpha is not None and alpha.min() == 255:
        alpha = None  # fully opaque: nothing worth storing
    mode = {(False, False): ColorMode.RGB, (True, False): ColorMode.GREY,
            (False, True): ColorMode.RGBA, (True, True): ColorMode.GREY_ALPHA}[(grey, alpha is not None)]
    h, w = rgb.shape[:2]
    if h < 1 or w < 1:
        raise UserError("image is empty")
    if max(h, w) > 65535:
        raise UserError(f"image is {w}×{h}; the format allows at most 65535 pixels on a side")
    return PreparedImage(np.ascontiguousarray(rgb), mode, alpha, icc, exif)


def _pixel_count(image) -> int:
    """Pixels of an image about to be prepared, from a file's header only (0 if unreadable:
    :func:`prepare_image` then says why)."""
    if isinstance(image, (str, Path)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(image) as im:
                    return im.size[0] * im.size[1]
        except Exception:  # noqa: BLE001 - any failure is reported by prepare_image
            return 0
    if isinstance(image, Image.Image):
        return image.size[0] * image.size[1]
    shape = getattr(image, "shape", ())
    return int(shape[0]) * int(shape[1]) if len(shape) >= 2 else 0


class Codec:
    """A loaded model ready to code images. Build it with :func:`gancodec.load_model`."""

    tile = 64  # latent units (1024 px) per tile side
    analysis_margin = 4  # latent units (64 px); the analysis receptive field is 61 px
    # Above LARGE_IMAGE_PIXELS the analysis runs in tiles of half the side: its full-resolution
    # activations (128 channels, float32) are the largest buffers of a compress: 680 MB for a
    # 64-unit tile with its margins (1152² px), 210 MB at 32 (640² px), for ~23 % more work.
    large_analysis_tile = 32
    # The synthesis runs as head (latent-resolution layers) and tail (upsampling) tiled apart:
    # the tail's receptive field is about 2 latents, the head's 1 + 2 per residual block.
    tail_tile = 48  # latent units (768 px): a Kodak image in one tile; bounds the float64 buffers
    tail_margin = 3

    def __init__(self, name: str, folder: Path):
        self.folder = folder
        weights_path = folder / "model.safetensors"
        self.meta = json.loads((folder / "config.json").read_text())
        # The config's name is the one written into files: an archived release kept in a folder
        # such as hific-lite-v0.4 still writes (and reads) "hific-lite", as it did when current.
        self.name = str(self.meta.get("name", name))
        # Files written before headers carried the config's name carry the folder's name.
        self.names = (self.name, folder.name)
        self.version: str | None = str(self.meta["version"]) if self.meta.get("version") else None
        self.config = CodecConfig.from_dict(self.meta["codec_config"])
        # What --realism interpolates (gancodec.zoo.REALISM_BLENDS): the decoders' weights or, for
        # a model whose GAN decoder drifted too far from the MSE one for a weight blend to lie
        # between them, their images.
        self.realism_blend = str(self.meta.get("realism_blend", "weights"))
        if self.realism_blend not in REALISM_BLENDS:
            raise UserError(f"model {folder}: unknown realism_blend {self.realism_blend!r} in config.json "
                            "(written by a newer gancodec?)")
        self.weights_hash = weights_hash(weights_path)
        stored = self.meta.get("weights_hash")
        if stored is not None and stored != self.weights_hash.hex():
            # The stored hash is what finds this folder for a file (gancodec.zoo.find_codec):
            # a stale one would send files to the wrong weights or to none.
            raise UserError(f"model {folder}: config.json says weights_hash {stored} but model.safetensors "
                            f"hashes to {self.weights_hash.hex()} (re-export, or fix config.json)")
        tensors = load_file(str(weights_path))
        self.net = HiFiCLite(self.config)
        if any(k.startswith("g_s_gan.") for k in tensors):
            self.net.add_gan_decoder()
        if any(k.startswith("g_s_anchor.") for k in tensors):
            # An anchored GAN image is MSE + (GAN − anchor) in 8-bit pixels (_pixel_blend): it
            # exists only as pixels, so only a pixel blend can lie between it and the MSE image.
            if self.net.g_s_gan is None or self.realism_blend != "pixels":
                raise UserError(f"model {folder}: an anchored GAN decoder needs a GAN decoder and "
                                "realism_blend 'pixels' in config.json")
            self.net.add_gan_anchor()
        float_state = {
            k: v.float() for k, v in tensors.items() if v.is_floating_point() and not k.startswith("tables.")
        }
        missing, unexpected = self.net.load_state_dict(float_state, strict=False)
        needed = [k for k in missing if not k.startswith(("h_s.", "prior.", "context."))]
        if needed or unexpected:
            raise UserError(f"model {name}: weights file does not match its config ({needed[:3]} {unexpected[:3]})")
        self.net.eval().requires_grad_(False)
        self.hyper = IntegerHyperSynthesis(tensors, tensors["tables.y.thresholds"].numpy())
        # With a checkerboard context the latent is coded in two passes, anchors then the rest,
        # read one after the other from the one y stream.
        self.context = IntegerContext(tensors, self.hyper) if self.config.context == "checkerboard" else None
        self.z_tables = TableSet.from_padded(tensors["tables.z.pmf"].numpy(), tensors["tables.z.radius"].numpy())
        self.y_tables = TableSet.from_padded(tensors["tables.y.pmf"].numpy(), tensors["tables.y.radius"].numpy())
        self.y_scales = tensors["tables.y.scales"].double()  # the scale of each y table (for latent refinement)
        self.log_gain = tensors["log_gain"].double().numpy()
        self.log_inv_gain = tensors["log_inv_gain"].double().numpy()
        self._exact: dict[str, ExactSynthesis] = {}
        self._blend: tuple[tuple[bool, int], ExactSynthesis | torch.nn.Module] | None = None  # latest realism blend

    # -- facts -----------------------------------------------------------------------------------
    @property
    def levels(self) -> int:
        return self.config.levels

    @property
    def decoders(self) -> list[str]:
        return ["mse", "gan"] if self.net.g_s_gan is not None else ["mse"]

    @property
    def anchored(self) -> bool:
        """Whether the GAN image is anchored: MSE + (GAN − anchor) (HiFiCLite.add_gan_anchor)."""
        return self.net.g_s_anchor is not None

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.weights_hash.hex()}"

    # -- shared pieces ---------------------------------------------------------------------------
    def _gains(self, quality_milli: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain vectors at a quality, interpolated geometrically and rounded to a fixed-point
        grid so that last-ulp differences of exp() between platforms cannot matter."""
        q = quality_milli / 1000 - 1
        lo = min(int(math.floor(q)), self.levels - 2) if self.levels > 1 else 0
        t = q - lo
        hi = min(lo + 1, self.levels - 1)
        grid = 2.0**GAIN_FRACTION_BITS
        out = []
        for table in (self.log_gain, self.log_inv_gain):
            g = np.exp(table[lo] * (1 - t) + table[hi] * t)
            out.append(torch.from_numpy(np.round(g * grid) / grid).view(1, -1, 1, 1))
        return out[0], out[1]

    def _check_quality(self, quality: float) -> int:
        if not (isinstance(quality, (int, float)) and math.isfinite(quality)):
            raise UserError(f"quality must be a number in 1..{self.levels}")
        if not 1 <= quality <= self.levels:
            raise UserError(f"quality must be in 1..{self.levels}, got {quality}")
        return int(round(quality * 1000))

    def _z_indices(self, shape: tuple[int, ...]) -> np.ndarray:
        c = shape[1]
        return np.broadcast_to(np.arange(c).reshape(1, c, 1, 1), shape)

    # -- latent windows --------------------------------------------------------------------------
    # Nothing of the latent's size is held in float64: the hyper-synthesis runs on bands (for the
    # scale indices) and again on each synthesis tile's window (for the means). It is integer
    # arithmetic, so a window with ``hyper_margin`` z units of context is exactly the whole run's.
    # Bands are cut into column windows too, so their float64 temporaries (the context model's
    # 1×1 layers are 480 channels wide) are bounded by the window, not the image's width.
    hyper_band = 8  # z rows (32 latent rows) per window when the scale indices are made
    hyper_cols = 32  # z columns (128 latent columns) per window
    hyper_margin = 2  # z units of context: two stride-2 deconvolutions and a 3×3 convolution
    hyper_analysis_tile = 256  # latent units per tile of the (float) hyper-analysis
    hyper_analysis_margin = 16  # latent units; its receptive field is 13

    def _hyper_acc_window(self, z_int: torch.Tensor, a0: int, a1: int, b0: int, b1: int) -> torch.Tensor:
        """The integer hyper-synthesis's accumulators of latent rows a0:a1, columns b0:b1."""
        m, (hz, wz) = self.hyper_margin, z_int.shape[-2:]
        za0, za1 = max(0, a0 // 4 - m), min(hz, -(-a1 // 4) + m)
        zb0, zb1 = max(0, b0 // 4 - m), min(wz, -(-b1 // 4) + m)
        try:
            acc = self.hyper.accumulators(z_int[..., za0:za1, zb0:zb1])
        except ArithmeticError:
            raise CorruptFileError("entropy-coded data is damaged (hyper-latent out of range)") from None
        return acc[..., a0 - 4 * za0 : a1 - 4 * za0, b0 - 4 * zb0 : b1 - 4 * zb0]

    def _hyper_window(
        self, z_int: torch.Tensor, a0: int, a1: int, b0: int, b1: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The hyperprior's means (float64) and scale indices of latent rows a0:a1, columns b0:b1."""
        return self.hyper.params(self._hyper_acc_window(z_int, a0, a1, b0, b1))

    def _params_window(
        self, z_int: torch.Tensor, symbols: np.ndarray | None, a0: int, a1: int, b0: int, b1: int,
        origin: tuple[int, int] = (0, 0),
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and scale indices the latent rows a0:a1, columns b0:b1 were coded with: the
        hyperprior's, refined by the context model at the non-anchors (which reads the anchor
        ``symbols`` around the window) when the model has one. ``symbols`` holds the latent from
        row, column ``origin`` on (a band and the rows around it), at least to the context's reach."""
        if self.context is None:
            return self._hyper_window(z_int, a0, a1, b0, b1)
        hy, wy = 4 * z_int.shape[-2], 4 * z_int.shape[-1]
        r = CONTEXT_KERNEL // 2  # the context convolution's reach
        e0, e1, f0, f1 = max(0, a0 - r), min(hy, a1 + r), max(0, b0 - r), min(wy, b1 + r)
        hyper_acc = self._hyper_acc_window(z_int, e0, e1, f0, f1)
        anchors = torch.from_numpy(anchor_mask(e1 - e0, f1 - f0, e0, f0)).double()
        near = symbols[..., e0 - origin[0] : e1 - origin[0], f0 - origin[1] : f1 - origin[1]]
        acc = self.context.accumulators(torch.from_numpy(np.ascontiguousarray(near)), hyper_acc, anchors)
        acc = torch.where(anchors.bool(), hyper_acc, acc)
        return self.hyper.params(acc[..., a0 - e0 : a1 - e0, b0 - f0 : b1 - f0])

    # A latent up to this many elements (a 6-megapixel photo) keeps its means once they are made
    # (float64, 32 MB), so the synthesis's windows need not run the hyper-synthesis again.
    keep_means_elements = 1 << 22
    # Images above band_pixels are written in bands of band_rows latent rows (1024 image rows;
    # .gcz version 3, gancodec.entropy.bands), so both sides hold a few bands, never the image's
    # symbols. Smaller images are one band: the version 1/2 layout, byte for byte.
    band_rows = 64
    band_pixels = LARGE_IMAGE_PIXELS

    def _params_rows(
        self, z_int: torch.Tensor, r0: int, r1: int, symbols: np.ndarray | None = None,
        origin: tuple[int, int] = (0, 0), keep_means: bool = False, bar=None,
    ) -> tuple[np.ndarray, torch.Tensor | None]:
        """The scale index of every element of latent rows r0:r1 (uint8: the tables number at
        most 256): the hyperprior's, or with ``symbols`` (the anchors around the rows, from
        ``origin`` on) the context model's. With ``keep_means`` the means are returned too, else None."""
        shape = (1, self.config.latent_channels, r1 - r0, 4 * z_int.shape[-1])
        out = np.empty(shape, dtype=np.uint8)
        means = torch.empty(shape, dtype=torch.float64) if keep_means else None
        for a0, a1, b0, b1 in self._row_windows(r0, r1, shape[-1]):
            if symbols is None:
                window_means, idx = self._hyper_window(z_int, a0, a1, b0, b1)
            else:
                window_means, idx = self._params_window(z_int, symbols, a0, a1, b0, b1, origin)
            out[..., a0 - r0 : a1 - r0, b0:b1] = idx.numpy()
            if means is not None:
                means[..., a0 - r0 : a1 - r0, b0:b1] = window_means
            if bar is not None:
                bar.update()
        return out, means

    def _row_windows(self, r0: int, r1: int, width: int) -> Iterator[tuple[int, int, int, int]]:
        """Latent windows (a0, a1, b0, b1) covering latent rows r0:r1 of a latent ``width``
        columns wide, row by row; no float64 temporary is larger than a window's."""
        rows, cols = 4 * self.hyper_band, 4 * self.hyper_cols
        for a0 in range(r0, r1, rows):
            for b0 in range(0, width, cols):
                yield a0, min(r1, a0 + rows), b0, min(width, b0 + cols)

    def _window_count(self, r0: int, r1: int, width: int) -> int:
        return sum(1 for _ in self._row_windows(r0, r1, width))

    @property
    def _context_reach(self) -> int:
        """Latent rows (and columns) around a position whose anchors its parameters read."""
        return CONTEXT_KERNEL // 2 if self.context is not None else 0

    def _band_passes(self, r0: int, r1: int, hy: int) -> list[tuple[bool, int, int]]:
        """The coding passes of latent rows r0:r1 as (context pass, first row, end row): the
        hyperprior over the band and the context's reach around it, then (with a context model)
        the context over the band."""
        reach = self._context_reach
        passes = [(False, max(0, r0 - reach), min(hy, r1 + reach))]
        return passes + [(True, r0, r1)] if reach else passes

    # -- encoder ---------------------------------------------------------------------------------
    @torch.no_grad()
    def analyse(
        self, rgb: np.ndarray | StreamedRGB, progress: bool = False, to_disk: bool = False,
    ) -> torch.Tensor | DiskTensor:
        """The float32 latent y of a uint8 (H, W, 3) image (an array, or rows read from a file
        as the tiles move down). The image is padded (edge) to a multiple of 64 and turned into
        float one tile at a time, never as a whole. With
        ``to_disk`` the latent goes to a temporary file as the tiles finish (close it after use)."""
        h, w = rgb.shape[:2]
        hp, wp = -(-h // PAD_MULTIPLE) * PAD_MULTIPLE, -(-w // PAD_MULTIPLE) * PAD_MULTIPLE
        tile = self.large_analysis_tile if h * w > LARGE_IMAGE_PIXELS else self.tile
        sink = DiskTensor(self.config.latent_channels, hp // 16, wp // 16) if to_disk else None
        try:
            y = run_tiled(self.net.g_a, uint8_source(rgb), 1 / 16, tile * 16, self.analysis_margin * 16,
                          size=(hp, wp), sink=sink, progress=progress, desc="analysis")
        except BaseException:
            if sink is not None:
                sink.close()
            raise
        return y if sink is None else sink

    @torch.no_grad()
    def _hyper_latent(self, y_window: Source, gain: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """ẑ (integer-valued float64) of the latent read through ``y_window``, at a quality's gain."""

        def scaled(a0: int, a1: int, b0: int, b1: int) -> torch.Tensor:
            return (y_window(a0, a1, b0, b1).double() * gain).float()

        z = run_tiled(self.net.h_a, scaled, 1 / 4, self.hyper_analysis_tile, self.hyper_analysis_margin, size=size)
        return torch.round(z).clamp(-Z_CLAMP, Z_CLAMP).double()

    @torch.no_grad()
    def coding_params(
        self, y: torch.Tensor, gain: torch.Tensor, a0: int, a1: int, b0: int, b1: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The means (float64) and scale indices that latent rows a0:a1, columns b0:b1 of ``y``
        (float32, held whole) would be coded with at ``gain``: exactly what the decoder computes."""
        z_int = self._hyper_latent(lambda c0, c1, d0, d1: y[..., c0:c1, d0:d1], gain, y.shape[-2:])
        if self.context is None:
            return self._hyper_window(z_int, a0, a1, b0, b1)
        hy, wy = y.shape[-2:]
        r = self._context_reach
        e0, e1, f0, f1 = max(0, a0 - r), min(hy, a1 + r), max(0, b0 - r), min(wy, b1 + r)
        means, _ = self._hyper_window(z_int, e0, e1, f0, f1)
        symbols = torch.round(y[..., e0:e1, f0:f1].double() * gain - means).clamp(-(2**31) + 1, 2**31 - 1)
        symbols = symbols.numpy().astype(np.int32)
        return self._params_window(z_int, symbols, a0, a1, b0, b1, origin=(e0, f0))

    @torch.no_grad()
    def _code_latent(
        self, y: torch.Tensor | DiskTensor, quality_milli: int, banded: bool = False, progress: bool = False,
    ) -> tuple[list[bytes], bool]:
        """The z, z-escapes, y and y-escapes streams of latent ``y`` at a quality, and whether
        they are in bands (``banded`` asks for them; a latent of one band is never banded)."""
        gain, _ = self._gains(quality_milli)
        y_window = y.window if isinstance(y, DiskTensor) else (lambda a0, a1, b0, b1: y[..., a0:a1, b0:b1])
        z_int = self._hyper_latent(y_window, gain, y.shape[-2:])
        hy, wy = y.shape[-2:]
        banded = banded and hy > self.band_rows
        spans = band_spans(hy, self.band_rows) if banded else [(0, hy)]
        windows = sum(self._window_count(a0, a1, wy) for r0, r1 in spans for _, a0, a1 in self._band_passes(r0, r1, hy))
        z_stream, z_esc = coder.encode(z_int.long().numpy(), self._z_indices(z_int.shape), self.z_tables)
        with progress_bar(windows, progress, "entropy coding", unit="window") as bar:
            coded = []
            for r0, r1 in spans:
                coded.append(self._code_band(y_window, gain, z_int, r0, r1, bar))
                if banded:
                    return_free_memory()  # the band's arrays, as the decoder does
        if not banded:
            return [z_stream, z_esc, *coded[0]], False
        return [z_stream, z_esc, *pack_bands(self.band_rows, coded)], True

    def _code_band(self, y_window: Source, gain: torch.Tensor, z_int: torch.Tensor, r0: int, r1: int,
                   bar) -> tuple[bytes, bytes]:
        """(ANS words, escapes) of latent rows r0:r1: every position with the hyperprior; with a
        context model that is kept only at the anchors, and a second pass recodes the rest with
        the parameters the anchors around them give (those of the rows within the context's
        reach above and below the band are made too, and not coded here)."""
        hy, wy = 4 * z_int.shape[-2], 4 * z_int.shape[-1]
        passes = self._band_passes(r0, r1, hy)
        _, e0, e1 = passes[0]  # the band and the rows around it
        shape = (1, self.config.latent_channels, e1 - e0, wy)
        symbols = np.zeros(shape, dtype=SYMBOL_DTYPE)
        indices = np.empty(shape, dtype=np.uint8)
        for context_pass, p0, p1 in passes:
            for a0, a1, b0, b1 in self._row_windows(p0, p1, wy):
                if context_pass:
                    means, idx = self._params_window(z_int, symbols, a0, a1, b0, b1, origin=(e0, 0))
                else:
                    means, idx = self._hyper_window(z_int, a0, a1, b0, b1)
                q = torch.round(y_window(a0, a1, b0, b1).double() * gain - means)
                if q.numel() and q.abs().max() >= 2**31:
                    raise UserError("image gives latent values beyond what the format can store")
                keep = slice(None) if not context_pass else ~anchor_mask(a1 - a0, b1 - b0, a0, b0)
                values = q.numpy()[..., keep]
                symbols = coder.widened(symbols, values)
                symbols[..., a0 - e0 : a1 - e0, b0:b1][..., keep] = values
                indices[..., a0 - e0 : a1 - e0, b0:b1][..., keep] = idx.numpy()[..., keep]
                bar.update()
        if (e0, e1) != (r0, r1):  # drop the rows around the band
            symbols = np.ascontiguousarray(symbols[..., r0 - e0 : r1 - e0, :])
            indices = np.ascontiguousarray(indices[..., r0 - e0 : r1 - e0, :])
        if len(passes) == 1:
            return coder.encode(symbols, indices, self.y_tables)
        # one stream, read in two passes: the anchors, then the rest (selected in place: a
        # gathered copy of each half was the largest buffer of a large image's compress)
        anchors = anchor_mask(r1 - r0, wy, r0, 0)
        return coder.encode_passes([(symbols, indices, anchors), (symbols, indices, ~anchors)], self.y_tables)

    def _container(self, img: PreparedImage, quality_milli: int, coded: tuple[list[bytes], bool]) -> bytes:
        streams, banded = coded
        streams = list(streams)
        if img.mode.has_alpha:
            buf = io.BytesIO()
            Image.fromarray(img.alpha).save(buf, format="PNG", optimize=True)
            streams.append(buf.getvalue())
        h, w = img.height, img.width
        header = Header(self.name, self.weights_hash, w, h, img.mode, quality_milli)
        # Without metadata and bands the file is version 1, byte for byte what earlier versions wrote.
        extensions = {tag: v for tag, v in ((TAG_ICC, img.icc_profile), (TAG_EXIF, img.exif)) if v is not None}
        return Container(header, streams, extensions, banded=banded).to_bytes()

    def compress(
        self, image, quality: float | None = None, target_bpp: float | None = None, *,
        max_pixels: int | None = DEFAULT_MAX_PIXELS, keep_metadata: bool = False, progress: bool = False,
        refine: int = 0,
    ) -> bytes:
        """Compress to ``.gcz`` bytes at a quality in [1, levels] or at a target bits/pixel.
        Images above ``max_pixels`` (None: no limit) are refused before they are decoded. The
        ICC profile is kept; ``keep_metadata`` keeps the EXIF block too. ``progress`` shows a
        bar on stderr when the image takes more than a few seconds. ``refine`` > 0 spends that
        many gradient steps on the latent (:mod:`gancodec.refine`): fewer bytes for the same or
        better pixels, at ~1.2 s a step for a 768×512 photo on one core; for images up to
        ``LARGE_IMAGE_PIXELS``. The file is like any other."""
        if quality is not None and target_bpp is not None:
            raise UserError("give either a quality or a target bpp, not both")
        try:
            refine = check_steps(refine)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        pixels = _pixel_count(image)
        if refine and pixels > LARGE_IMAGE_PIXELS:
            raise UserError(f"latent refinement works on images up to {LARGE_IMAGE_PIXELS / 1e6:g} megapixels; "
                            f"this one has {pixels / 1e6:.1f} (compress it without refinement)")
        with reuse_large_buffers(pixels):  # reading a large image is in the scope too
            # a large PNG or JPEG is read as the analysis moves down it: never whole (3 bytes a pixel)
            img = prepare_image(image, max_pixels, keep_metadata, stream=pixels > LARGE_IMAGE_PIXELS)
            if pixels > LARGE_IMAGE_PIXELS:
                return_free_memory()  # Pillow's decoded copy, freed by now
            try:
                y = self.analyse(img.rgb, progress=progress, to_disk=pixels > SPILL_LATENT_PIXELS)
            except OSError as exc:  # the temporary file: no room, no permission
                raise UserError(f"cannot write the latent's temporary file ({exc.strerror or exc})") from None
            banded = pixels > self.band_pixels
            try:
                if target_bpp is None:
                    q = self._check_quality(3.0 if quality is None else quality)
                    if refine:
                        y = refine_latent(self, img.rgb, y, q, refine, progress=progress)
                    img.release_pixels()  # from here on the latent stands for the image
                    return self._container(img, q, self._code_latent(y, q, banded, progress))
                if not refine:
                    img.release_pixels()
                    return self._search_bpp(img, y, target_bpp, banded)[1]
                # refined at the quality that meets the target unrefined, then the quality searched
                # again: a refined latent needs fewer bits at any quality near the one it was refined for
                q, _ = self._search_bpp(img, y, target_bpp, banded)
                y = refine_latent(self, img.rgb, y, q, refine, progress=progress)
                img.release_pixels()
                return self._search_bpp(img, y, target_bpp, banded)[1]
            finally:
                if isinstance(y, DiskTensor):
                    y.close()

    def _search_bpp(
        self, img: PreparedImage, y: torch.Tensor | DiskTensor, target_bpp: float, banded: bool,
    ) -> tuple[int, bytes]:
        """Bisection over the continuous quality knob; the analysis transform runs once. Returns
        the file nearest the target and its quality (in thousandths)."""
        if not (math.isfinite(target_bpp) and target_bpp > 0):
            raise UserError("target bpp must be a positive number")
        pixels = img.height * img.width
        lo, hi = 1000, self.levels * 1000
        best: tuple[float, int, bytes] | None = None
        for _ in range(14):
            mid = (lo + hi) // 2
            data = self._container(img, mid, self._code_latent(y, mid, banded))
            bpp = 8 * len(data) / pixels
            if best is None or abs(bpp - target_bpp) < best[0]:
                best = (abs(bpp - target_bpp), mid, data)
            if bpp > target_bpp:
                hi = mid - 1
            else:
                lo = mid + 1
            if lo > hi:
                break
        for edge in (1000, self.levels * 1000):  # the ends of the range, if the target is beyond
            data = self._container(img, edge, self._code_latent(y, edge, banded))
            if abs(8 * len(data) / pixels - target_bpp) < best[0]:
                best = (abs(8 * len(data) / pixels - target_bpp), edge, data)
        return best[1], best[2]

    # -- decoder ---------------------------------------------------------------------------------
    def check_header(self, header: Header) -> None:
        if header.model not in self.names or header.weights_hash != self.weights_hash:
            raise ModelMismatchError(
                f"file was made by model {header.model}@{header.weights_hash.hex()}, "
                f"but {self.model_id} is loaded"
            )
        if not 1000 <= header.quality_milli <= self.levels * 1000:
            raise ModelMismatchError(f"file quality {header.quality} is outside this model's range")

    def _check_container(self, container: Container, max_pixels: int | None) -> None:
        h = container.header
        self.check_header(h)
        check_pixels(h.width, h.height, max_pixels, what="file's image")
        if len(container.streams) != core_stream_count(h.mode):
            raise ModelMismatchError("file has an unexpected number of streams")

    @torch.no_grad()
    def _latent_source(self, container: Container, progress: bool = False) -> tuple[Source, tuple[int, int]]:
        """Entropy-decode a file's latent; returns a function giving any window of ŷ (float64,
        exact) and the latent's size. The window function must be asked top to bottom (rows a0
        never going up by more than the context's reach): the y symbols are decoded band by band
        as the windows move down and dropped once passed, so only a few bands of integer symbols
        (int16 where they fit) are held. A version 1/2 file is one band: it is decoded whole at
        the first window, as before."""
        h = container.header
        z_stream, z_esc, y_stream, y_esc = container.streams[:4]
        hp, wp = -(-h.height // PAD_MULTIPLE) * PAD_MULTIPLE, -(-h.width // PAD_MULTIPLE) * PAD_MULTIPLE
        z_shape = (1, self.config.hyper_channels, hp // 64, wp // 64)
        z_int = coder.decode(z_stream, z_esc, self._z_indices(z_shape), self.z_tables)
        # The encoder clamps ẑ to ±Z_CLAMP; a larger escape value can only be forged, and could
        # push the integer hyper-synthesis out of its exact range.
        if z_int.size and np.abs(z_int).max() > Z_CLAMP:
            raise CorruptFileError("entropy-coded data is damaged (hyper-latent out of range)")
        z_t = torch.from_numpy(z_int).double()
        hy, wy = 4 * z_t.shape[-2], 4 * z_t.shape[-1]
        if container.banded:
            band_rows, bands = unpack_bands(y_stream, y_esc, hy)
        else:
            band_rows, bands = hy, [(y_stream, y_esc)]
        spans = band_spans(hy, band_rows)
        reach = self._context_reach
        keep = self.config.latent_channels * hy * wy <= self.keep_means_elements
        symbols, means = BandStore(spans), BandStore(spans)
        readers: dict[int, coder.StreamDecoder] = {}  # bands whose anchors are decoded, not the rest
        done = 0  # bands before this one are decoded whole
        one_band_bar = progress and len(spans) == 1  # a large version 1/2 file: a bar for its decoding

        def start(b: int) -> None:
            """Band b's first pass: its anchors, or all of it without a context model."""
            r0, r1 = spans[b]
            with progress_bar(self._window_count(r0, r1, wy), one_band_bar, "entropy model", "window") as bar:
                idx, band_means = self._params_rows(z_t, r0, r1, keep_means=keep and not reach, bar=bar)
            reader = coder.StreamDecoder(*bands[b], self.y_tables)
            out = np.zeros(idx.shape, dtype=SYMBOL_DTYPE)
            if reach:
                symbols.arrays[b] = reader.decode_into(out, idx, anchor_mask(r1 - r0, wy, r0, 0))
                readers[b] = reader
            else:
                symbols.arrays[b] = reader.decode_into(out, idx)
                reader.finish()
                if band_means is not None:
                    means.arrays[b] = band_means.numpy()

        def finish(b: int) -> None:
            """Band b's non-anchors, once the anchors within the context's reach are decoded."""
            r0, r1 = spans[b]
            e0, e1 = max(0, r0 - reach), min(hy, r1 + reach)
            for near in symbols.covering(e0, e1):
                if near not in symbols.arrays:
                    start(near)
            around = symbols.rows(e0, e1, 0, wy)
            with progress_bar(self._window_count(r0, r1, wy), one_band_bar, "entropy model", "window") as bar:
                idx, band_means = self._params_rows(z_t, r0, r1, around, (e0, 0), keep_means=keep, bar=bar)
            del around
            reader = readers.pop(b)
            symbols.arrays[b] = reader.decode_into(symbols.arrays[b], idx, ~anchor_mask(r1 - r0, wy, r0, 0))
            reader.finish()
            if band_means is not None:
                means.arrays[b] = band_means.numpy()

        _, inv_gain = self._gains(h.quality_milli)

        def window(a0: int, a1: int, b0: int, b1: int) -> torch.Tensor:
            nonlocal done
            while done < len(spans) and spans[done][0] < a1:
                if done not in symbols.arrays:
                    start(done)
                if reach:
                    finish(done)
                done += 1
            means.drop_above(a0)
            if symbols.drop_above(a0 - reach) and len(spans) > 1:
                # a band's arrays (~10 MB) live in the heap, below the 32 MB that large images
                # map: give the pages of the passed bands back rather than let holes accumulate
                return_free_memory()
            if keep:
                window_means = torch.from_numpy(means.rows(a0, a1, b0, b1))
            else:
                e0, e1, f0, f1 = max(0, a0 - reach), min(hy, a1 + reach), max(0, b0 - reach), min(wy, b1 + reach)
                window_means, _ = self._params_window(z_t, symbols.rows(e0, e1, f0, f1), a0, a1, b0, b1, (e0, f0))
            # Exact in float64: integers plus dyadic means, times a dyadic gain.
            return (torch.from_numpy(symbols.rows(a0, a1, b0, b1)).double() + window_means) * inv_gain

        return window, (hy, wy)

    @torch.no_grad()
    def decode_latent(self, container: Container, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> torch.Tensor:
        """The whole dequantised latent ŷ (float64) of a file: for inspection and small images;
        :meth:`decompress` never makes it whole."""
        self._check_container(container, max_pixels)
        window, (hy, wy) = self._latent_source(container)
        return window(0, hy, 0, wy)

    def _check_decoder(self, decoder: str, realism: float | None) -> int | None:
        """Validate a decoder choice; returns the realism in thousandths (None: no blend)."""
        if decoder not in self.decoders:
            raise UserError(f"decoder must be one of {', '.join(self.decoders)}, got {decoder!r}")
        if realism is None:
            return None
        if "gan" not in self.decoders:
            raise UserError(f"model {self.name} has no GAN decoder to blend with (--realism)")
        if not (isinstance(realism, (int, float)) and 0 <= realism <= 1):
            raise UserError(f"realism must be in 0..1, got {realism}")
        return int(round(realism * 1000))

    def _network(self, which: str, exact: bool) -> ExactSynthesis | torch.nn.Module:
        """One synthesis network ("mse", "gan" or "anchor"), fixed point if ``exact`` (built once)."""
        if not exact:
            return self.net.synthesis(which)
        if which not in self._exact:
            self._exact[which] = ExactSynthesis(self.net.synthesis(which))
        return self._exact[which]

    def _synthesis_net(self, decoder: str, realism: float | None, exact: bool) -> ExactSynthesis | torch.nn.Module:
        """The synthesis of a decoder, or of the MSE–GAN weight blend at ``realism``: fixed point
        when ``exact``, else the float network. The two decoders are built once; of the blends
        only the latest is kept, so trying many realism values does not pile up networks."""
        milli = self._check_decoder(decoder, realism)
        if milli is None:
            return self._network(decoder, exact)
        if self._blend is None or self._blend[0] != (exact, milli):
            if exact:
                net = self._network("mse", True).blended(self._network("gan", True), milli)
            else:
                net = copy.deepcopy(self.net.g_s)
                net.load_state_dict(blended_parameters(self.net.g_s, self.net.g_s_gan, milli / 1000))
            self._blend = ((exact, milli), net)
        return self._blend[1]

    @staticmethod
    def _head_tail(net: ExactSynthesis | torch.nn.Module, exact: bool) -> tuple[Callable, Callable]:
        """A synthesis as its latent-resolution layers and its upsampling layers (tiled apart)."""
        if exact:
            return net.head, net.tail
        layers = net.net
        split = upsampling_start(layers)
        return layers[:split], layers[split:]

    def _pixel_blend(self, milli: int, exact: bool, to_uint8: bool) -> tuple[Callable, Callable]:
        """Head and tail of the decoders side by side, the tail blending their images at
        ``milli`` / 1000: ((1000 - r)·MSE + r·GAN) / 1000, rounded half up on the 8-bit pixels
        of each decoder with ``to_uint8`` (integers: as bit-exact as either decoder), else on
        their float outputs. An anchored model's GAN image is MSE + GAN − anchor, clipped to
        0..255 in 8-bit pixels, and its GAN decoder (``milli`` 1000) comes through here too.
        The decoders have one architecture, so one tiling serves them all."""
        anchored = self.anchored
        names = ("mse", "gan", "anchor") if anchored else ("mse", "gan")
        heads, tails = zip(*(self._head_tail(self._network(d, exact), exact) for d in names))

        def head(y: torch.Tensor) -> torch.Tensor:
            return torch.cat([h(y) for h in heads], dim=1)

        def tail(a: torch.Tensor) -> torch.Tensor:
            x = [t(part) for t, part in zip(tails, a.chunk(len(names), dim=1))]
            if not to_uint8:
                x_mse, x_gan = x[0], x[1]
                if anchored:  # the 8-bit path's clamps, in float
                    x_mse, x_gan, x_anchor = (xi.clamp(0, 1) for xi in x)
                    x_gan = (x_mse + x_gan - x_anchor).clamp_(0, 1)
                return (x_mse * (1000 - milli) + x_gan * milli) / 1000
            p = [torch.round(xi.clamp_(0, 1).mul_(255)).to(torch.int32) for xi in x]
            p_mse, p_gan = p[0], (torch.clamp(p[1] + p[0] - p[2], 0, 255) if anchored else p[1])
            return torch.div(p_mse * (1000 - milli) + p_gan * milli + 500, 1000, rounding_mode="floor").to(torch.uint8)

        return head, tail

    @torch.no_grad()
    def synthesise(
        self, y_hat: torch.Tensor | Source, decoder: str = "mse", exact: bool = True, to_uint8: bool = False, *,
        size: tuple[int, int] | None = None, sink: Sink | None = None, progress: bool = False,
        realism: float | None = None,
    ) -> torch.Tensor | None:
        """Pixels in [0, 1] (before clamping) from the latent. ``exact`` runs the fixed-point
        synthesis, identical on every machine and thread count; ``exact=False`` runs the float32
        network, faster but with last-bit differences between platforms. ``to_uint8`` rounds
        every tile to 8-bit pixels as it is made, so a large image never exists in float64.
        ``y_hat`` may be a window function with ``size``, and ``sink`` may take the tiles
        (:func:`gancodec.tiling.run_tiled`). ``realism`` in 0..1 decodes with the MSE and GAN
        decoders blended (0: MSE, 1: GAN, in steps of 1/1000), as exactly as either alone: their
        weights, or for a model whose config says ``realism_blend: pixels`` their images. An
        anchored model's GAN image is made of three syntheses' pixels (:meth:`_pixel_blend`)."""
        milli = self._check_decoder(decoder, realism)
        if self.realism_blend == "pixels":
            if milli in (0, 1000):  # the blend's ends are the decoders
                decoder, milli, realism = ("mse" if milli == 0 else "gan"), None, None
            if milli is None and decoder == "gan" and self.anchored:
                milli = 1000  # the anchored GAN image needs the MSE and anchor images beside the GAN one
        if milli is not None and self.realism_blend == "pixels":
            head, tail = self._pixel_blend(milli, exact, to_uint8)
            to_uint8 = False  # done by the blend, per decoder
        else:
            head, tail = self._head_tail(self._synthesis_net(decoder, realism, exact), exact)
        head_margin = 2 + 2 * self.config.res_blocks
        dtype = torch.float64 if exact else torch.float32
        if isinstance(y_hat, torch.Tensor):
            y_hat = y_hat.to(dtype)
        else:
            window = y_hat

            def y_hat(a0: int, a1: int, b0: int, b1: int) -> torch.Tensor:
                return window(a0, a1, b0, b1).to(dtype)
        if to_uint8:
            float_tail = tail

            def tail(a: torch.Tensor) -> torch.Tensor:
                return torch.round(float_tail(a).clamp_(0, 1).mul_(255)).to(torch.uint8)

        return run_tiled_two_stage(head, tail, y_hat, 16, self.tile, head_margin, self.tail_tile, self.tail_margin,
                                   size=size, sink=sink, progress=progress, desc="synthesis")

    def decompress(
        self, data: bytes, decoder: str = "mse", exact: bool = True, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
        progress: bool = False, realism: float | None = None,
    ) -> np.ndarray:
        """Decode to a uint8 array: (H, W, 3) RGB, (H, W) grey, (H, W, 4) RGBA or (H, W, 2) LA.
        ``exact=False`` trades bit-exact pixels for a faster float32 synthesis. A file declaring
        more than ``max_pixels`` pixels (None: no limit) is refused before anything is decoded.
        The metadata streams (ICC profile, EXIF) are read with :func:`read_metadata`.
        ``progress`` shows a bar on stderr when decoding takes more than a few seconds.
        ``realism`` (0..1) blends the MSE and GAN decoders instead of picking one."""
        out: np.ndarray | None = None

        def keep(r0: int, rows: np.ndarray) -> None:
            nonlocal out
            if out is None:
                out = np.empty((h.height, *rows.shape[1:]), dtype=np.uint8)
            out[r0 : r0 + rows.shape[0]] = rows

        container = Container.from_bytes(data)  # parsed (and its CRC checked) once
        h = container.header
        self.decompress_rows(container, keep, decoder, exact, max_pixels=max_pixels, progress=progress,
                             realism=realism)
        return out[..., 0] if out.shape[2] == 1 else out

    def decompress_to_file(
        self, data: bytes, path: str | Path, decoder: str = "mse", exact: bool = True, *,
        max_pixels: int | None = DEFAULT_MAX_PIXELS, progress: bool = False, realism: float | None = None,
    ) -> None:
        """:meth:`decompress` into an image file (format from the suffix) with the file's ICC
        profile / EXIF attached, written atomically. A ``.png`` is streamed band by band
        (:mod:`gancodec.pngstream`): the decoded image never exists whole in memory."""
        how = {"decoder": decoder, "exact": exact, "max_pixels": max_pixels, "progress": progress, "realism": realism}
        container = Container.from_bytes(data)
        self._check_container(container, max_pixels)  # before an output of the declared size is made
        h = container.header
        channels = (1 if h.mode.is_grey else 3) + h.mode.has_alpha
        with row_writer(path, h.width, h.height, channels, **read_metadata(container)) as write:
            self.decompress_rows(container, write, **how)

    def decompress_rows(
        self, data: bytes | Container, write: Callable[[int, np.ndarray], None], decoder: str = "mse",
        exact: bool = True, *,
        max_pixels: int | None = DEFAULT_MAX_PIXELS, progress: bool = False, realism: float | None = None,
    ) -> Header:
        """:meth:`decompress`, handing the image to ``write(first_row, rows)`` in bands of whole
        rows, top to bottom, instead of making it whole: ``rows`` is uint8 (n, W, C) with C as
        :meth:`decompress`'s channels (1 for grey), and is reused once ``write`` returns. With a
        streaming writer (:class:`gancodec.pngstream.PngWriter`) the decoded image never exists
        whole. ``data`` may be the file's parsed :class:`Container`. Returns the file's header."""
        container = data if isinstance(data, Container) else Container.from_bytes(data)
        h = container.header
        self._check_container(container, max_pixels)
        self._check_decoder(decoder, realism)  # before the entropy decoding, not after
        alpha = self._decode_alpha(container) if h.mode.has_alpha else None  # cheap checks first
        grey = h.mode.is_grey
        # The synthesis makes its head tiles in row-major order, each ``16 * tile`` pixel rows high:
        # a band of that height is complete when the next band's first tile arrives.
        band_rows = 16 * self.tile
        band = np.empty((min(band_rows, h.height), h.width, (1 if grey else 3) + (alpha is not None)), dtype=np.uint8)
        start = 0  # first image row of the band being filled

        def flush(end: int) -> None:
            nonlocal start
            n = end - start
            if alpha is not None:
                band[:n, :, -1] = alpha[start:end]
            write(start, band[:n])
            start = end

        def store(r0: int, r1: int, c0: int, c1: int, tile: torch.Tensor) -> None:
            r1, c1 = min(r1, h.height), min(c1, h.width)  # the padding beyond the image is dropped
            if r0 >= r1 or c0 >= c1:
                return
            if r0 >= start + band_rows:
                flush(start + band_rows)
            if not start <= r0 < r1 <= start + band_rows:
                raise RuntimeError("synthesis tiles arrived out of band order")  # a bug, not a bad file
            rgb = tile[0, :, : r1 - r0, : c1 - c0].permute(1, 2, 0).numpy()
            if grey:
                band[r0 - start : r1 - start, c0:c1, 0] = np.round(rgb.astype(np.float32).mean(axis=2))
            else:
                band[r0 - start : r1 - start, c0:c1, :3] = rgb

        with reuse_large_buffers(h.height * h.width):
            window, size = self._latent_source(container, progress)
            self.synthesise(window, decoder, exact, to_uint8=True, size=size, sink=store, progress=progress,
                            realism=realism)
        if start < h.height:
            flush(h.height)
        return h

    @staticmethod
    def _decode_alpha(container: Container) -> np.ndarray:
        """The alpha plane: a PNG whose declared size must be the image's (checked from its
        header, before Pillow inflates anything, so a deflate bomb is refused unread)."""
        h = container.header
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                png = Image.open(io.BytesIO(container.streams[4]), formats=["PNG"])
                if png.size != (h.width, h.height):
                    raise CorruptFileError("alpha stream has the wrong size")
                png.load()
                return np.asarray(png if png.mode == "L" else png.convert("L"))
        except CorruptFileError:
            raise
        except Exception:  # noqa: BLE001 - Pillow raises many types on damaged data; all mean one thing
            raise CorruptFileError("alpha stream is damaged") from None


def read_metadata(data: bytes | Container) -> dict[str, bytes]:
    """The metadata a ``.gcz`` file (bytes or parsed) carries, ready for Pillow's ``save``:
    ``icc_profile`` and ``exif`` (with the ``Exif\\0\\0`` prefix JPEG needs; PNG/WebP writers
    accept it too)."""
    container = data if isinstance(data, Container) else Container.from_bytes(data)
    out: dict[str, bytes] = {}
    if container.icc_profile is not None:
        out["icc_profile"] = container.icc_profile
    if container.exif is not None:
        out["exif"] = b"Exif\x00\x00" + container.exif
    return out
