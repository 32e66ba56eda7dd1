"""The ``.gcz`` container: header, streams, CRC. Specified in docs/FORMAT.md.

Parsing validates everything before any decoding starts: the magic, the format version, the
CRC-32 over the whole file (which catches truncation and bit flips), that the stream lengths
add up, and the shape of the optional metadata streams. Nothing here allocates more than the
file's own size. Model identity (name + weights hash) and the pixel limit are checked by the
codec that loads it, before it decodes anything.

Version 2 is version 1 plus *extension streams* (tagged metadata such as an ICC profile) after
the image's own streams. A file without extensions is still written as version 1, byte for byte
as before, so a reader from before version 2 reads every file that does not carry metadata.
Version 3 is version 2 with the latent's y stream in horizontal bands (large images only:
:mod:`gancodec.entropy.bands`); the container itself is the same.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum

from .errors import CorruptFileError

MAGIC = b"\x89GCZ"
FORMAT_VERSION = 1  # image streams only
EXTENDED_VERSION = 2  # image streams + tagged extension streams
BANDED_VERSION = 3  # version 2 with the y stream in bands (large images; gancodec.entropy.bands)
READABLE_VERSIONS = (FORMAT_VERSION, EXTENDED_VERSION, BANDED_VERSION)
MAX_SIDE = 65535
HASH_BYTES = 8
TAG_BYTES = 4
# Extension tags this version writes; a reader skips tags it does not know (forward compatible).
TAG_ICC = b"ICCP"  # ICC colour profile, as embedded in PNG/JPEG
TAG_EXIF = b"EXIF"  # EXIF as a TIFF structure ("II*\0" / "MM\0*"), orientation already applied


class ColorMode(IntEnum):
    RGB = 0
    GREY = 1
    RGBA = 2
    GREY_ALPHA = 3

    @property
    def has_alpha(self) -> bool:
        return self in (ColorMode.RGBA, ColorMode.GREY_ALPHA)

    @property
    def is_grey(self) -> bool:
        return self in (ColorMode.GREY, ColorMode.GREY_ALPHA)


@dataclass
class Header:
    model: str
    weights_hash: bytes
    width: int
    height: int
    mode: ColorMode
    quality_milli: int  # quality × 1000: the exact value both sides use
    stream_lengths: list[int] = field(default_factory=list)
    version: int = FORMAT_VERSION

    @property
    def quality(self) -> float:
        return self.quality_milli / 1000


def core_stream_count(mode: ColorMode) -> int:
    """Streams that carry the image itself: z, z escapes, y, y escapes (+ alpha)."""
    return 4 + int(mode.has_alpha)


@dataclass
class Container:
    header: Header
    streams: list[bytes]  # the image's streams (for version 1: every stream of the file)
    extensions: dict[bytes, bytes] = field(default_factory=dict)  # tag -> payload (versions 2, 3)
    banded: bool = False  # the y stream is in bands (version 3)

    @property
    def icc_profile(self) -> bytes | None:
        return self.extensions.get(TAG_ICC)

    @property
    def exif(self) -> bytes | None:
        return self.extensions.get(TAG_EXIF)

    def to_bytes(self) -> bytes:
        h = self.header
        name = h.model.encode("ascii")
        if len(name) > 255 or len(h.weights_hash) != HASH_BYTES:
            raise ValueError("bad model name or hash")
        if not (1 <= h.width <= MAX_SIDE and 1 <= h.height <= MAX_SIDE):
            raise ValueError(f"image sides must be 1..{MAX_SIDE}")
        extra = []
        for tag, payload in self.extensions.items():
            if len(tag) != TAG_BYTES:
                raise ValueError(f"extension tags are {TAG_BYTES} bytes, got {tag!r}")
            extra.append(tag + payload)
        streams = [*self.streams, *extra]
        if len(streams) > 255 or any(len(s) >= 2**32 for s in streams):
            raise ValueError("too many or too long streams")
        version = BANDED_VERSION if self.banded else EXTENDED_VERSION if extra else FORMAT_VERSION
        parts = [
            MAGIC,
            struct.pack("<BB", version, len(name)),
            name,
            h.weights_hash,
            struct.pack("<IIBHB", h.width, h.height, int(h.mode), h.quality_milli, len(streams)),
            struct.pack(f"<{len(streams)}I", *(len(s) for s in streams)),
            *streams,
        ]
        body = b"".join(parts)
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> Container:
        if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
            raise CorruptFileError("not a gancodec file (bad magic number)")
        if len(data) < 8:
            raise CorruptFileError("file is truncated")
        version = data[4]
        if version not in READABLE_VERSIONS:
            raise CorruptFileError(
                f"unsupported format version {version} (this gancodec reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))})"
            )
        body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
        if zlib.crc32(body) != crc:
            raise CorruptFileError("file is truncated or damaged (CRC mismatch)")
        try:
            pos = 5
            (name_len,) = struct.unpack_from("<B", body, pos)
            pos += 1
            name = body[pos : pos + name_len].decode("ascii")
            pos += name_len
            weights_hash = body[pos : pos + HASH_BYTES]
            pos += HASH_BYTES
            width, height, mode, quality_milli, n_streams = struct.unpack_from("<IIBHB", body, pos)
            pos += struct.calcsize("<IIBHB")
            lengths = list(struct.unpack_from(f"<{n_streams}I", body, pos))
            pos += 4 * n_streams
        except (struct.error, UnicodeDecodeError):
            raise CorruptFileError("file header is damaged") from None
        if len(weights_hash) != HASH_BYTES or not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
            raise CorruptFileError("file header is damaged (impossible image size)")
        try:
            color = ColorMode(mode)
        except ValueError:
            raise CorruptFileError(f"file header is damaged (unknown colour mode {mode})") from None
        if pos + sum(lengths) != len(body):
            raise CorruptFileError("file is truncated or has trailing data (stream lengths disagree)")
        streams = []
        for n in lengths:
            streams.append(body[pos : pos + n])
            pos += n
        extensions: dict[bytes, bytes] = {}
        if version in (EXTENDED_VERSION, BANDED_VERSION):
            core = core_stream_count(color)
            if len(streams) < core:
                raise CorruptFileError("file header is damaged (too few streams)")
            for s in streams[core:]:
                tag = s[:TAG_BYTES]
                if len(s) < TAG_BYTES or tag in extensions:
                    raise CorruptFileError("file has a damaged or repeated metadata stream")
                extensions[tag] = s[TAG_BYTES:]
            streams = streams[:core]
            _check_metadata(extensions)
        header = Header(name, weights_hash, width, height, color, quality_milli, lengths, version)
        return cls(header, streams, extensions, banded=version == BANDED_VERSION)


def is_icc_profile(data: bytes) -> bool:
    """An ICC profile starts with its own size (big-endian) and has 'acsp' at offset 36."""
    return len(data) >= 128 and data[36:40] == b"acsp" and struct.unpack(">I", data[:4])[0] == len(data)


def is_tiff_exif(data: bytes) -> bool:
    """EXIF as a TIFF structure: a byte-order mark and the number 42."""
    return data[:4] in (b"II*\x00", b"MM\x00*")


def _check_metadata(extensions: dict[bytes, bytes]) -> None:
    """The known extension payloads must look like what they claim: whatever reaches a decoded
    image's metadata was checked here first (the writer stores only what passes these checks)."""
    icc = extensions.get(TAG_ICC)
    if icc is not None and not is_icc_profile(icc):
        raise CorruptFileError("file's ICC profile stream is damaged")
    exif = extensions.get(TAG_EXIF)
    if exif is not None and not is_tiff_exif(exif):
        raise CorruptFileError("file's EXIF stream is damaged")
