"""Bjøntegaard delta rate and delta quality between two rate–quality curves.

BD-rate answers "at equal quality, how many more (or fewer) bits does the test codec need than
the anchor", averaged over the quality range both curves cover: both curves are interpolated as
log(rate) as a function of quality, integrated over the common quality interval, and the mean
log-rate difference is turned into a percentage (negative = the test codec saves bits).

Two interpolation methods:

* ``"pchip"`` (default) — piecewise-cubic Hermite interpolation through the points, the method of
  the later VCEG/JVET reference spreadsheets. It passes through every point, never overshoots
  between them, and works from two points up.
* ``"polyfit"`` — the original VCEG-M33 method: one least-squares cubic per curve (a lower degree
  when a curve has fewer than four points). It can wobble with badly spaced points.

Both give exactly ``100·(k − 1)`` % when the test curve is the anchor with every rate multiplied
by ``k``: a constant factor is a constant shift in log-rate, which either interpolation keeps.

Curves are cleaned first: points are sorted by rate and only those whose quality strictly
increases are kept (a point with more bits and no better quality is not on the RD curve). When
the curves share no quality range, or a curve has fewer than two usable points, the result is
``nan``.

Quality is whatever higher-is-better measure is given: PSNR in dB, or MS-SSIM in dB
(``-10·log10(1 − MS-SSIM)``, as CompressAI plots it), which is closer to linear in log-rate than
raw MS-SSIM.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

METHODS = ("pchip", "polyfit")


def rd_hull(rate: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Points sorted by rate, keeping only those with strictly increasing quality; finite, rate > 0."""
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape:
        raise ValueError(f"rate and quality differ in length: {r.shape} vs {q.shape}")
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[keep], q[keep]
    order = np.lexsort((q, r))
    out_r: list[float] = []
    out_q: list[float] = []
    for ri, qi in zip(r[order], q[order]):
        if out_q and qi <= out_q[-1]:
            continue
        out_r.append(float(ri))
        out_q.append(float(qi))
    return np.array(out_r), np.array(out_q)


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """∫ y(x) dx over [lo, hi] for the curve through (x, y), x strictly increasing."""
    if method == "pchip":
        return float(PchipInterpolator(x, y, extrapolate=False).integrate(lo, hi))
    if method == "polyfit":
        deg = min(3, len(x) - 1)
        # centre and scale x so the cubic fit is well conditioned at any quality scale
        mid, half = (x[0] + x[-1]) / 2, max((x[-1] - x[0]) / 2, 1e-12)
        p = np.polynomial.Polynomial.fit((x - mid) / half, y, deg, domain=[-1, 1], window=[-1, 1])
        anti = p.integ()
        return float((anti((hi - mid) / half) - anti((lo - mid) / half)) * half)
    raise ValueError(f"unknown BD method {method!r}; use one of {METHODS}")


def _prepare(anchor, test, method):
    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; use one of {METHODS}")
    ra, qa = rd_hull(*anchor)
    rt, qt = rd_hull(*test)
    if len(ra) < 2 or len(rt) < 2:
        return None
    return ra, qa, rt, qt


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
    method: str = "pchip",
) -> float:
    """Average rate difference of *test* against *anchor* at equal quality, in percent."""
    prepared = _prepare((anchor_rate, anchor_quality), (test_rate, test_quality), method)
    if prepared is None:
        return math.nan
    ra, qa, rt, qt = prepared
    lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    if not hi > lo:
        return math.nan
    ia = _integral(qa, np.log(ra), lo, hi, method)
    it = _integral(qt, np.log(rt), lo, hi, method)
    return float((math.exp((it - ia) / (hi - lo)) - 1) * 100)


def bd_quality(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
    method: str = "pchip",
) -> float:
    """Average quality difference of *test* against *anchor* at equal rate (e.g. BD-PSNR in dB)."""
    prepared = _prepare((anchor_rate, anchor_quality), (test_rate, test_quality), method)
    if prepared is None:
        return math.nan
    ra, qa, rt, qt = prepared
    la, lt = np.log(ra), np.log(rt)
    lo, hi = max(la[0], lt[0]), min(la[-1], lt[-1])
    if not hi > lo:
        return math.nan
    return (_integral(lt, qt, lo, hi, method) - _integral(la, qa, lo, hi, method)) / (hi - lo)


def bd_rate_matrix(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    anchors: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    method: str = "pchip",
) -> dict[str, dict[str, float | None]]:
    """``table[test][anchor]`` = BD-rate (%) of every curve against every anchor (default: each other).

    The diagonal and pairs without a common quality range are ``None`` (JSON ``null``).
    """
    anchors = curves if anchors is None else anchors
    table: dict[str, dict[str, float | None]] = {}
    for test, (rt, qt) in curves.items():
        row: dict[str, float | None] = {}
        for anchor, (ra, qa) in anchors.items():
            value = math.nan if test == anchor and anchors is curves else bd_rate(ra, qa, rt, qt, method)
            row[anchor] = round(value, 3) if math.isfinite(value) else None
        table[test] = row
    return table


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on the dB scale CompressAI uses: ``-10·log10(1 − MS-SSIM)``; inf for 1."""
    if value is None or not math.isfinite(value):
        return math.nan
    return math.inf if value >= 1 else -10 * math.log10(1 - value)
