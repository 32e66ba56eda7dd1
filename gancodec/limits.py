"""The limit on decoded pixels: checked from a file's declared size before anything is allocated.

A ``.gcz`` header or a PNG header of a few bytes can claim 65535×65535 pixels; decoding that
would take tens of GB. Every reader checks the declared size against ``max_pixels`` first and
refuses with :class:`ImageTooLargeError` (a :class:`~gancodec.errors.UserError`: one line, exit
status 2). The default is Pillow's own decompression-bomb error threshold (2 × 89,478,485 ≈
179 MP), so that anything Pillow opens by default we also code; a 108 MP phone photo passes.
Callers raise it with ``max_pixels=`` (API) or ``--max-pixels`` (command), or pass ``None`` /
``0`` for no limit. Services that decode untrusted files should lower it.
"""

from __future__ import annotations

from .errors import UserError

DEFAULT_MAX_PIXELS = 2 * 89_478_485  # Pillow's DecompressionBombError threshold


class ImageTooLargeError(UserError):
    """An image or file that declares more pixels than the caller allows."""


def resolve(max_pixels: int | None) -> int | None:
    """``None`` or 0: no limit. Anything else must be a positive whole number."""
    if max_pixels is None:
        return None
    # bool before the 0 test: False == 0 would otherwise pass as "no limit"
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 0:
        raise UserError(f"max_pixels must be a positive whole number (0 or None: no limit), got {max_pixels!r}")
    return max_pixels or None


def check_pixels(width: int, height: int, max_pixels: int | None, what: str = "image") -> None:
    """Refuse a declared size above the limit; call before allocating anything of that size."""
    limit = resolve(max_pixels)
    if limit is not None and width * height > limit:
        raise ImageTooLargeError(
            f"{what} is {width}×{height} = {width * height / 1e6:.1f} MP, above the limit of "
            f"{limit / 1e6:.1f} MP (raise it with --max-pixels or max_pixels=)"
        )
