"""Fuzzing of the ``.gcz`` reader and decoder: hostile files end as an image or our error.

Like libjpeg-turbo and libavif under OSS-Fuzz, every input must end as a decoded image or a
:class:`~gancodec.errors.UserError` (``CorruptFileError``, ``ModelMismatchError``,
``ImageTooLargeError``) within a time and memory bound: never another exception, a hang or
unbounded memory. The mutator is our own (no extra dependency): bit flips, byte edits,
truncations, insertions, deletions, splices, random files, and the edits an attacker makes,
which recompute the CRC so that the damage reaches the decoder: header fields (size, mode,
quality, stream count and lengths, version, model name), the content of one stream, forged
escape values and metadata streams.

The seed corpus is made on the spot from small images with a tiny untrained model (no trained
weights needed) and, with ``--model hific-lite``, the shipped one. ``tests/test_fuzz.py`` runs
a few thousand cases in CI; a long run::

    nice -n 19 python -m gancodec.fuzz --cases 100000 --seed 1 [--model hific-lite]

prints the outcome counts, the slowest case and the largest per-case peak RSS as JSON, and
saves any failing input to ``--crash-dir``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .bitstream import MAGIC, TAG_EXIF, TAG_ICC, Container
from .errors import UserError

TINY_CONFIG = dict(channels=16, latent_channels=16, hyper_channels=16, res_blocks=1)
DEFAULT_MAX_PIXELS = 128 * 128  # for the fuzz: every accepted header decodes in well under a second
DEFAULT_CASE_SECONDS = 20.0  # of CPU time


class CaseTimeout(BaseException):
    """A case ran past its time bound (raised from a timer signal). A ``BaseException``, like
    ``KeyboardInterrupt``: the timer fires wherever the case happens to be, and a handler there
    that maps ``Exception`` to our refusal (the entropy decoder's, Pillow's) must not turn a
    hang into a "refused"."""


# -- models and corpus ----------------------------------------------------------------------------

def tiny_model(folder: str | Path):
    """The tiny untrained codec of the tests, exported like a real model into ``folder``."""
    import torch

    from .models.codec import CodecConfig, HiFiCLite
    from .zoo import load_model
    from .zoo.export import export_model

    folder = Path(folder) / "tiny"
    if not (folder / "model.safetensors").is_file():
        torch.manual_seed(0)
        model = HiFiCLite(CodecConfig(**TINY_CONFIG))
        model.add_gan_decoder()
        export_model(model, folder, name="tiny")
    return load_model(str(folder))


def _icc_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif() -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "gancodec"  # Make
    exif[0x0112] = 1  # Orientation
    return exif.tobytes()


def seed_corpus(codec) -> list[bytes]:
    """Small valid files covering every colour mode, the escape streams, both metadata streams and
    the banded layout."""
    from PIL import Image

    rng = np.random.default_rng(0)
    smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)).resize((48, 40)))
    noise = rng.integers(0, 256, (17, 33, 3), dtype=np.uint8)
    alpha = (np.arange(48 * 40) % 251).astype(np.uint8).reshape(40, 48)
    files = [
        codec.compress(np.zeros((1, 1, 3), np.uint8), quality=1),
        codec.compress(noise, quality=2.5),
        codec.compress(smooth, quality=codec.levels),
        codec.compress(smooth[..., 0], quality=1.5),
        codec.compress(np.dstack([smooth, alpha]), quality=2),
        codec.compress(np.dstack([smooth[..., 0], alpha]), quality=3),
        codec.compress(rng.integers(0, 256, (70, 66, 3), dtype=np.uint8), quality=1),  # 2×2 z positions
    ]
    img = Image.fromarray(smooth)
    img.info["icc_profile"] = _icc_profile()
    img.info["exif"] = _exif()
    files.append(codec.compress(img, quality=2, keep_metadata=True))
    # version 3: the y stream in bands (a large image's layout, here in bands of 4 latent rows)
    layout = codec.band_pixels, codec.band_rows
    codec.band_pixels, codec.band_rows = 0, 4
    try:
        files.append(codec.compress(rng.integers(0, 256, (150, 40, 3), dtype=np.uint8), quality=2))
        files.append(codec.compress(img, quality=1, keep_metadata=True))  # and metadata
    finally:
        codec.band_pixels, codec.band_rows = layout
    return files


# -- mutations ------------------------------------------------------------------------------------

def recrc(body_and_crc: bytes) -> bytes:
    body = body_and_crc[:-4] if len(body_and_crc) >= 4 else body_and_crc
    return body + struct.pack("<I", zlib.crc32(body))


def _header_offsets(data: bytes) -> dict[str, int]:
    name_len = data[5] if len(data) > 5 else 0
    base = 6 + name_len + 8
    return {"version": 4, "name_len": 5, "name": 6, "hash": 6 + name_len, "width": base, "height": base + 4,
            "mode": base + 8, "quality": base + 9, "n_streams": base + 11, "lengths": base + 12}


INTERESTING32 = [0, 1, 2, 3, 4, 63, 64, 65, 127, 128, 255, 256, 1023, 1024, 4096, 65535, 65536,
                 2**16 + 1, 2**24, 2**31 - 1, 2**31, 2**32 - 1]


def _flip_bits(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def _set_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if b:
            b[rng.randrange(len(b))] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    return bytes(b)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _insert(rng: random.Random, data: bytes) -> bytes:
    pos = rng.randrange(len(data) + 1)
    return data[:pos] + rng.randbytes(rng.choice([1, 2, 4, 16, 300])) + data[pos:]


def _delete(rng: random.Random, data: bytes) -> bytes:
    pos = rng.randrange(len(data) + 1)
    return data[:pos] + data[pos + rng.choice([1, 2, 4, 16, 300]):]


def _duplicate(rng: random.Random, data: bytes) -> bytes:
    a = rng.randrange(len(data) + 1)
    b = min(len(data), a + rng.randint(1, 64))
    return data[:b] + data[a:b] + data[b:]


def _random_file(rng: random.Random, data: bytes) -> bytes:
    body = rng.randbytes(rng.choice([0, 1, 7, 8, 30, 200, 2000]))
    return MAGIC + bytes([rng.choice([1, 2])]) + body if rng.random() < 0.6 else body


def _header_field(rng: random.Random, data: bytes) -> bytes:
    """An attacker's edit: one header field set to an edge value; the CRC is recomputed."""
    off = _header_offsets(data)
    b = bytearray(data)
    field = rng.choice(["width", "height", "size", "mode", "quality", "n_streams", "lengths", "version", "name_len"])
    try:
        if field in ("width", "height"):
            struct.pack_into("<I", b, off[field], rng.choice(INTERESTING32))
        elif field == "size":  # both sides: the classic decompression bomb header
            w, h = rng.choice([(65535, 65535), (20000, 20000), (65535, 1), (1, 65535), (4096, 4096), (129, 127)])
            struct.pack_into("<II", b, off["width"], w, h)
        elif field == "mode":
            b[off["mode"]] = rng.choice([0, 1, 2, 3, 4, 255])
        elif field == "quality":
            struct.pack_into("<H", b, off["quality"], rng.choice([0, 1, 999, 1000, 1001, 5999, 6000, 6001, 65535]))
        elif field == "n_streams":
            b[off["n_streams"]] = rng.choice([0, 1, 3, 4, 5, 6, 7, 255])
        elif field == "lengths":
            n = b[off["n_streams"]]
            if n:
                struct.pack_into("<I", b, off["lengths"] + 4 * rng.randrange(n), rng.choice(INTERESTING32))
        elif field == "version":
            b[4] = rng.choice([0, 1, 2, 3, 4, 255])  # 1 <-> 3: a one-stream y read as bands and back
        else:
            b[5] = rng.choice([0, 1, 3, 255])
    except (struct.error, IndexError):
        pass
    return recrc(bytes(b))


def _stream_edit(rng: random.Random, data: bytes) -> bytes:
    """One stream's content damaged (or replaced), the container rebuilt consistently."""
    try:
        c = Container.from_bytes(data)
    except UserError:
        return _flip_bits(rng, data)
    streams = list(c.streams)
    k = rng.randrange(len(streams))
    mutate = rng.choice([_flip_bits, _set_bytes, _truncate, _insert, _delete, _duplicate])
    streams[k] = mutate(rng, streams[k]) if streams[k] else rng.randbytes(rng.choice([1, 4, 8]))
    if rng.random() < 0.1:  # streams swapped
        i, j = rng.randrange(len(streams)), rng.randrange(len(streams))
        streams[i], streams[j] = streams[j], streams[i]
    return Container(c.header, streams, dict(c.extensions), banded=c.banded).to_bytes()


def _forged_escapes(rng: random.Random, data: bytes) -> bytes:
    """Escape streams holding extreme int32 values (or too many / too few of them)."""
    try:
        c = Container.from_bytes(data)
    except UserError:
        return data
    streams = list(c.streams)
    k = rng.choice([1, 3])
    values = [rng.choice([2**31 - 1, -(2**31), 2**15 + 1, -(2**15) - 1, 10**6, 0]) for _ in range(rng.randint(1, 8))]
    extra = struct.pack(f"<{len(values)}i", *values)
    streams[k] = extra if rng.random() < 0.5 else streams[k] + extra
    return Container(c.header, streams, dict(c.extensions), banded=c.banded).to_bytes()


def _forged_metadata(rng: random.Random, data: bytes) -> bytes:
    """Metadata streams: damaged, huge-claiming or unknown tags."""
    try:
        c = Container.from_bytes(data)
    except UserError:
        return data
    ext = dict(c.extensions)
    choice = rng.randrange(4)
    if choice == 0:
        ext[TAG_ICC] = rng.randbytes(rng.choice([0, 10, 200]))
    elif choice == 1:
        ext[TAG_EXIF] = rng.choice([b"II*\x00", b"MM\x00*"]) + rng.randbytes(rng.choice([0, 4, 100]))
    elif choice == 2:
        ext[rng.randbytes(4)] = rng.randbytes(rng.choice([0, 50]))
    elif ext:
        tag = rng.choice(list(ext))
        ext[tag] = _flip_bits(rng, ext[tag])
    return Container(c.header, list(c.streams), ext, banded=c.banded).to_bytes()


def _splice(rng: random.Random, data: bytes, other: bytes) -> bytes:
    return recrc(data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1):])


BYTE_MUTATORS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "flip": _flip_bits, "set": _set_bytes, "truncate": _truncate, "insert": _insert,
    "delete": _delete, "duplicate": _duplicate,
}
STRUCTURED: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "random_file": _random_file, "header_field": _header_field, "stream_edit": _stream_edit,
    "escapes": _forged_escapes, "metadata": _forged_metadata,
}


def mutate(rng: random.Random, corpus: list[bytes]) -> tuple[str, bytes]:
    """One fuzz input and the name of the mutation that made it."""
    data = rng.choice(corpus)
    r = rng.random()
    if r < 0.35:
        name = rng.choice(list(BYTE_MUTATORS))
        out = BYTE_MUTATORS[name](rng, data)
        if rng.random() < 0.6:  # the attacker recomputes the CRC so the damage gets through
            name, out = name + "+crc", recrc(out)
        return name, out
    if r < 0.4:
        return "splice", _splice(rng, data, rng.choice(corpus))
    name = rng.choice(list(STRUCTURED))
    out = STRUCTURED[name](rng, data)
    if rng.random() < 0.2:  # a second edit on top
        out = _stream_edit(rng, out)
        name += "+stream_edit"
    return name, out


# -- running cases --------------------------------------------------------------------------------

def _rss_peak_mb() -> float:
    """Peak RSS since the last :func:`_reset_peak` (Linux), else of the whole process."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # Linux >= 4.0: reset the peak RSS (VmHWM) to the current RSS
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise :class:`CaseTimeout` in the main thread after ``seconds`` of CPU time (Unix
    timers). CPU time, not wall time, so that a run under ``nice -n 19`` on a busy machine,
    where a case may wait many seconds for a core, does not count waiting as hanging."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def handler(signum, frame):
        raise CaseTimeout(f"case used more than {seconds} s of CPU")

    old = signal.signal(signal.SIGPROF, handler)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


def run_case(codec, data: bytes, max_pixels: int | None, decoder: str = "mse",
             case_seconds: float = DEFAULT_CASE_SECONDS) -> str:
    """The outcome of decoding one input: ``decoded``, ``refused`` (our error), or
    ``bug:<ExceptionType>`` (anything else, a timeout included)."""
    from .codec import read_metadata

    try:
        with _time_limit(case_seconds):
            try:
                read_metadata(data)  # the info/metadata path parses on its own
                out = codec.decompress(data, decoder=decoder, max_pixels=max_pixels)
            except UserError:
                return "refused"
        h = Container.from_bytes(data).header
        if out.shape[:2] != (h.height, h.width) or out.dtype != np.uint8:
            return "bug:WrongShape"
        return "decoded"
    except CaseTimeout:
        return "bug:CaseTimeout"
    except Exception as exc:  # noqa: BLE001 - classifying every other exception is the point
        return f"bug:{type(exc).__name__}"


def fuzz(codecs: list, cases: int, seed: int = 0, max_pixels: int | None = DEFAULT_MAX_PIXELS,
         case_seconds: float = DEFAULT_CASE_SECONDS, crash_dir: Path | None = None,
         progress: Callable[[int, dict], None] | None = None) -> dict:
    """Run ``cases`` mutated inputs against each codec's seed corpus; returns the figures."""
    rng = random.Random(seed)
    corpora = [(codec, seed_corpus(codec)) for codec in codecs]
    outcomes: Counter[str] = Counter()
    by_mutation: dict[str, Counter[str]] = {}
    bugs: list[dict] = []
    max_s, max_cpu, max_rss, slowest = 0.0, 0.0, 0.0, ""
    can_reset = _reset_peak()
    rss_start = _rss_peak_mb()
    start = time.perf_counter()
    for i in range(cases):
        codec, corpus = corpora[i % len(corpora)]
        name, data = mutate(rng, corpus)
        decoder = rng.choice(codec.decoders)
        if can_reset:
            _reset_peak()
        t, cpu = time.perf_counter(), time.process_time()
        outcome = run_case(codec, data, max_pixels, decoder, case_seconds)
        dt = time.perf_counter() - t
        max_cpu = max(max_cpu, time.process_time() - cpu)
        rss = _rss_peak_mb()
        outcomes[outcome] += 1
        by_mutation.setdefault(name.split("+")[0], Counter())[outcome] += 1
        if dt > max_s:
            max_s, slowest = dt, name
        max_rss = max(max_rss, rss)
        if outcome.startswith("bug:"):
            bugs.append({"case": i, "mutation": name, "outcome": outcome})
            if crash_dir is not None:
                crash_dir.mkdir(parents=True, exist_ok=True)
                (crash_dir / f"case{i:07d}-{codec.name}.gcz").write_bytes(data)
        if progress is not None and (i + 1) % 1000 == 0:
            progress(i + 1, dict(outcomes))
    return {
        "cases": cases, "seed": seed, "models": [c.model_id for c in codecs], "max_pixels": max_pixels,
        "seconds": round(time.perf_counter() - start, 1), "outcomes": dict(outcomes),
        "by_mutation": {k: dict(v) for k, v in sorted(by_mutation.items())},
        "max_case_seconds": round(max_s, 3), "max_case_cpu_seconds": round(max_cpu, 3), "slowest_mutation": slowest,
        "rss_at_start_mb": round(rss_start), "max_case_peak_rss_mb": round(max_rss),
        "per_case_rss": can_reset, "bugs": bugs[:50],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gancodec.fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", nargs="+", default=["tiny"],
                   help="'tiny' (untrained, made on the spot) and/or installed models, e.g. hific-lite")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    p.add_argument("--case-seconds", type=float, default=DEFAULT_CASE_SECONDS)
    p.add_argument("--crash-dir", type=Path, default=Path("fuzz-crashes"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from .zoo import load_model

    with tempfile.TemporaryDirectory() as tmp:
        codecs = [tiny_model(tmp) if m == "tiny" else load_model(m) for m in args.model]

        def report(done: int, outcomes: dict) -> None:
            print(json.dumps({"done": done, "outcomes": outcomes}), file=sys.stderr, flush=True)

        result = fuzz(codecs, args.cases, args.seed, args.max_pixels or None, args.case_seconds,
                      args.crash_dir, report)
    print(json.dumps(result, indent=1))
    return 1 if result["bugs"] else 0


if __name__ == "__main__":
    sys.exit(main())
