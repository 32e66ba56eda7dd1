"""The ``.gcz`` container: header, streams, CRC. Specified in docs/FORMAT.md.

Parsing validates everything before any decoding starts: the magic, the format version, the
CRC-32 over the whole file (which catches truncation and bit flips), and that the stream
lengths add up. Model identity (name + weights hash) is checked by the codec that loads it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum

from .errors import CorruptFileError

MAGIC = b"\x89GCZ"
FORMAT_VERSION = 1
MAX_SIDE = 65535
HASH_BYTES = 8


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

    @property
    def quality(self) -> float:
        return self.quality_milli / 1000


@dataclass
class Container:
    header: Header
    streams: list[bytes]

    def to_bytes(self) -> bytes:
        h = self.header
        name = h.model.encode("ascii")
        if len(name) > 255 or len(h.weights_hash) != HASH_BYTES:
            raise ValueError("bad model name or hash")
        if not (1 <= h.width <= MAX_SIDE and 1 <= h.height <= MAX_SIDE):
            raise ValueError(f"image sides must be 1..{MAX_SIDE}")
        parts = [
            MAGIC,
            struct.pack("<BB", FORMAT_VERSION, len(name)),
            name,
            h.weights_hash,
            struct.pack("<IIBHB", h.width, h.height, int(h.mode), h.quality_milli, len(self.streams)),
            struct.pack(f"<{len(self.streams)}I", *(len(s) for s in self.streams)),
            *self.streams,
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
        if version != FORMAT_VERSION:
            raise CorruptFileError(
                f"unsupported format version {version} (this gancodec reads version {FORMAT_VERSION})"
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
        header = Header(name, weights_hash, width, height, color, quality_milli, lengths)
        return cls(header, streams)
