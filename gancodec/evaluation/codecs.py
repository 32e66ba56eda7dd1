"""Codec adapters for the evaluation harness: every format behind one small interface.

An adapter knows its quality knob (the one the format really has), a default sweep of that
knob, how to encode a uint8 RGB array to the bytes a user would store and how to decode them.
Rates are always measured on those bytes, container headers included, so the numbers are what
a file on disk costs.

Fixed choices, so runs are reproducible and timings compare per core:

* ``jpeg`` — Pillow/libjpeg-turbo, ``quality`` 1..100, Pillow's defaults otherwise (4:2:0
  chroma subsampling, no ``optimize``): what ``Image.save(f, "JPEG", quality=q)`` gives.
* ``webp`` — libwebp lossy, ``quality`` 0..100, Pillow's default ``method=4``.
* ``avif`` — libavif, ``quality`` 0..100, ``speed=6`` (Pillow's default) and ``max_threads=1``:
  multi-threaded AV1 encoding gives slightly different bytes for different thread counts, so
  one thread keeps files identical across machines and makes the encode time a per-core time.
* ``jxl`` — libjxl through ``pillow-jxl-plugin``, ``quality`` 0..100 (libjxl maps it to a
  butteraugli distance), ``effort=7`` (the default), ``num_threads=1``.
* ``jpeg2000`` — OpenJPEG, 9/7 irreversible wavelet with the colour transform on (``mct=1``;
  Pillow's default is no colour transform, which costs ~3 dB). Its knob is the target rate:
  the setting is bits per pixel and is passed as ``quality_mode="rates"`` with a compression
  ratio of ``24 / bpp`` (24 = bits of an uncompressed RGB pixel).
* ``png`` — lossless, one setting (zlib level 6, Pillow's default); a reference for "how big is
  lossless", excluded from curves and BD-rates.
* ``gancodec`` / ``gancodec-gan`` — the learned codec, quality 1..levels (the trained levels;
  the knob is continuous, so ``--settings gancodec=1,1.5,2,...`` adds points in between at the
  cost of time). Both names share one bitstream (``encode_key``) and differ only in the decoder
  (``mse``/``gan``), so the harness encodes once and decodes twice.

All adapters have a higher setting mean more bytes, which the matched-size search relies on.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
from abc import ABC, abstractmethod

import numpy as np
from PIL import Image
from PIL import features as pil_features

from ..errors import UserError

CODEC_NAMES = ("gancodec", "gancodec-gan", "jpeg", "webp", "avif", "jxl", "jpeg2000", "png")
DEFAULT_MODEL = "hific-lite"


class Codec(ABC):
    """One codec at one fixed configuration; the setting is its single quality knob."""

    name: str = ""
    label: str = ""  # for plots and grids
    knob: str = "quality"  # what the setting means, for tables
    default_settings: tuple[float, ...] = ()
    setting_range: tuple[float, float] = (0.0, 100.0)  # for the matched-size search
    integer_setting: bool = True
    lossless: bool = False

    @property
    def encode_key(self) -> str:
        """Codecs with the same key share one bitstream (encode once, decode each)."""
        return self.name

    def settings(self) -> list[float]:
        return [float(s) for s in self.default_settings]

    def range(self) -> tuple[float, float]:
        return self.setting_range

    def format_setting(self, setting: float) -> str:
        value = int(setting) if float(setting).is_integer() else round(float(setting), 3)
        return f"{self.knob}={value}"

    @abstractmethod
    def why_unavailable(self) -> str | None:
        """``None`` if the codec can run here, otherwise a one-line reason (shown as "skipped")."""

    @abstractmethod
    def identity(self) -> str:
        """Library versions and fixed parameters; results are only reused when this matches."""

    @abstractmethod
    def encode(self, rgb: np.ndarray, setting: float) -> bytes: ...

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray: ...


def _decode_with_pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _version(feature: str) -> str:
    try:
        return str(pil_features.version(feature))
    except ValueError:  # unknown feature name in this Pillow
        return "?"


class PillowCodec(Codec):
    """A format Pillow (or a registered Pillow plugin) writes and reads."""

    pil_format: str = ""
    pil_feature: str | None = None  # PIL.features name that must be present
    library: str = ""

    def params(self, setting: float) -> dict:
        return {"quality": int(round(setting))}

    def encode(self, rgb: np.ndarray, setting: float) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format=self.pil_format, **self.params(setting))
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        return _decode_with_pillow(data)

    def _register(self) -> str | None:
        """Load a plugin if the format needs one; a reason string if that is impossible."""
        if self.pil_feature and not pil_features.check(self.pil_feature):
            return f"this Pillow was built without {self.pil_feature} support"
        return None

    def why_unavailable(self) -> str | None:
        return _probe(self)

    def fixed_params(self) -> dict:
        p = self.params(self.default_settings[len(self.default_settings) // 2])
        return {k: v for k, v in p.items() if k not in ("quality", "quality_layers")}

    def identity(self) -> str:
        import PIL

        fixed = ",".join(f"{k}={v}" for k, v in sorted(self.fixed_params().items())) or "Pillow defaults"
        return f"{self.name}: Pillow {PIL.__version__}, {self.library} [{fixed}]"


@functools.cache
def _probe_cached(cls: type) -> str | None:
    codec = cls()
    reason = codec._register()
    if reason:
        return reason
    # a registered format can still fail to encode (plugin without an encoder, broken library):
    # a 16x16 round trip finds that out before hours of benchmark are planned around it
    probe = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    try:
        out = codec.decode(codec.encode(probe, codec.settings()[len(codec.settings()) // 2]))
    except Exception as exc:  # any library failure means "cannot run here", never a crash
        return f"{codec.pil_format} round trip failed: {type(exc).__name__}: {exc}"
    if out.shape != probe.shape:
        return f"{codec.pil_format} decoded to shape {out.shape}, expected {probe.shape}"
    return None


def _probe(codec: PillowCodec) -> str | None:
    return _probe_cached(type(codec))


class JPEG(PillowCodec):
    name, label, pil_format, pil_feature = "jpeg", "JPEG", "JPEG", "jpg"
    default_settings = (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)
    setting_range = (1, 100)

    @property
    def library(self) -> str:
        return f"libjpeg-turbo {_version('libjpeg_turbo')}"


class WebP(PillowCodec):
    name, label, pil_format, pil_feature = "webp", "WebP", "WEBP", "webp"
    default_settings = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
    setting_range = (0, 100)

    @property
    def library(self) -> str:
        return f"libwebp {_version('webp')}"

    def params(self, setting: float) -> dict:
        return {"quality": int(round(setting)), "method": 4}


class AVIF(PillowCodec):
    name, label, pil_format, pil_feature = "avif", "AVIF", "AVIF", "avif"
    default_settings = (10, 20, 30, 40, 50, 60, 70, 80, 90)
    setting_range = (0, 100)

    @property
    def library(self) -> str:
        return f"libavif {_version('avif')}"

    def params(self, setting: float) -> dict:
        return {"quality": int(round(setting)), "speed": 6, "max_threads": 1}


class JPEGXL(PillowCodec):
    name, label, pil_format = "jxl", "JPEG XL", "JXL"
    default_settings = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
    setting_range = (0, 100)

    @property
    def library(self) -> str:
        try:
            return f"pillow-jxl-plugin {importlib.metadata.version('pillow-jxl-plugin')}"
        except importlib.metadata.PackageNotFoundError:
            return "pillow-jxl-plugin ?"

    def _register(self) -> str | None:
        try:
            import pillow_jxl  # noqa: F401  (importing registers the JXL format with Pillow)
        except ImportError as exc:
            return f"JPEG XL needs pillow-jxl-plugin (pip install pillow-jxl-plugin): {exc}"
        return None

    def params(self, setting: float) -> dict:
        return {"quality": int(round(setting)), "effort": 7, "num_threads": 1}


class JPEG2000(PillowCodec):
    name, label, pil_format, pil_feature = "jpeg2000", "JPEG 2000", "JPEG2000", "jpg_2000"
    knob = "bpp"
    default_settings = (0.1, 0.15, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
    setting_range = (0.02, 8.0)
    integer_setting = False

    @property
    def library(self) -> str:
        return f"OpenJPEG {_version('jpg_2000')}"

    def params(self, setting: float) -> dict:
        # "rates" layers are compression ratios against the raw 24-bit RGB size
        return {
            "quality_mode": "rates",
            "quality_layers": [24.0 / float(setting)],
            "irreversible": True,
            "mct": 1,
        }


class PNG(PillowCodec):
    name, label, pil_format, pil_feature = "png", "PNG (lossless)", "PNG", "zlib"
    knob = "zlib level"
    default_settings = (6,)
    setting_range = (6, 6)
    lossless = True

    @property
    def library(self) -> str:
        return f"zlib {_version('zlib')}"

    def params(self, setting: float) -> dict:
        return {"compress_level": int(round(setting))}


class LearnedCodec(Codec):
    """The gancodec model; ``gancodec`` decodes with the MSE decoder, ``gancodec-gan`` with the GAN one."""

    integer_setting = False

    def __init__(self, decoder: str = "mse", model: str = DEFAULT_MODEL, refine: int = 0):
        self.decoder = decoder
        self.model_name = model
        self.refine = refine  # encoder-side latent refinement steps (gancodec.refine); 0: off
        self.name = "gancodec" if decoder == "mse" else f"gancodec-{decoder}"
        self.label = "gancodec (MSE decoder)" if decoder == "mse" else f"gancodec ({decoder.upper()} decoder)"

    @property
    def encode_key(self) -> str:
        return "gancodec"

    @property
    def model(self):
        import gancodec

        # load_model caches per process, so every worker loads the weights exactly once
        return gancodec.load_model(self.model_name)

    def why_unavailable(self) -> str | None:
        try:
            model = self.model
        except Exception as exc:  # missing weights, broken file, import error: all "skipped"
            return f"model {self.model_name!r} could not be loaded: {exc}"
        decoders = getattr(model, "decoders", ["mse", "gan"])
        if self.decoder not in decoders:
            return f"model {self.model_name!r} has no {self.decoder} decoder (it has: {', '.join(decoders)})"
        return None

    def settings(self) -> list[float]:
        # the trained levels only: on Kodak each point costs ~1 s of decoding per image and
        # decoder on one core, and half steps would nearly double the learned codec's share
        return [float(q) for q in range(1, int(self.model.levels) + 1)]

    def range(self) -> tuple[float, float]:
        return (1.0, float(self.model.levels))

    def identity(self) -> str:
        model = self.model
        refined = f", refine {self.refine}" if self.refine else ""  # a different encoder: not mixed in one run
        return f"gancodec: {getattr(model, 'model_id', self.model_name)}{refined}"

    def encode(self, rgb: np.ndarray, setting: float) -> bytes:
        import gancodec

        return gancodec.compress(rgb, quality=float(setting), model=self.model, refine=self.refine)

    def decode(self, data: bytes) -> np.ndarray:
        import gancodec

        out = gancodec.decompress(data, model=self.model, decoder=self.decoder)
        return out if out.ndim == 3 else np.repeat(out[..., None], 3, axis=2)


_CLASSICAL: dict[str, type[PillowCodec]] = {c.name: c for c in (JPEG, WebP, AVIF, JPEGXL, JPEG2000, PNG)}


def parse_codec_list(text: str | None) -> list[str]:
    """``"jpeg,webp"`` → names, in order, without repeats; ``None``/``"all"`` → every codec."""
    if text is None or text.strip() in ("", "all"):
        return list(CODEC_NAMES)
    names: list[str] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part not in CODEC_NAMES:
            raise UserError(f"unknown codec {part!r}; known codecs: {', '.join(CODEC_NAMES)}")
        if part not in names:
            names.append(part)
    if not names:
        raise UserError("no codecs given")
    return names


def make_codec(name: str, model: str = DEFAULT_MODEL, refine: int = 0) -> Codec:
    """The codec called ``name``; ``model`` and ``refine`` (latent refinement steps when
    encoding) apply to the learned codec."""
    if name == "gancodec":
        return LearnedCodec("mse", model, refine)
    if name == "gancodec-gan":
        return LearnedCodec("gan", model, refine)
    if name in _CLASSICAL:
        return _CLASSICAL[name]()
    raise UserError(f"unknown codec {name!r}; known codecs: {', '.join(CODEC_NAMES)}")


def resolve_codecs(
    names: list[str], model: str = DEFAULT_MODEL, refine: int = 0,
) -> tuple[list[Codec], dict[str, str]]:
    """The codecs that can run here, and for each one that cannot, why (reported as skipped)."""
    ready: list[Codec] = []
    skipped: dict[str, str] = {}
    for name in names:
        codec = make_codec(name, model, refine)
        reason = codec.why_unavailable()
        if reason:
            skipped[name] = reason
        else:
            ready.append(codec)
    return ready, skipped
