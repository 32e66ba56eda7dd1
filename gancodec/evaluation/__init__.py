"""Evaluation harness: run codecs over a folder of images and compare them fairly.

The pieces, one job each:

* :mod:`.codecs` — adapters with one shape for every format (learned codec, JPEG, WebP, AVIF,
  JPEG XL, JPEG 2000, PNG): a sweep of settings, ``encode`` to the real stored bytes, ``decode``.
* :mod:`.realism` — measures of how *real* a reconstruction looks that need no downloaded
  weights (high-frequency energy ratio, patch KID on handcrafted features), plus LPIPS when a
  user already has it installed.
* :mod:`.bdrate` — Bjøntegaard delta rate / quality between two RD curves.
* :mod:`.bench` — the runner behind ``gancodec bench`` (parallel, resumable).
* :mod:`.results` — reading the results journal and writing per-image and summary tables.
* :mod:`.reference` — published curves (CompressAI, BPG, HiFiC) to draw for context.
* :mod:`.plot`, :mod:`.compare`, :mod:`.report` — RD curves, matched-size grids, the HTML page.
* :mod:`.cli` — the ``bench``, ``plot``, ``compare`` and ``report`` sub-commands.
"""
