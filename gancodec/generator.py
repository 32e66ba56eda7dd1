"""Runtime of the image generators: load a DCGAN-family model, draw digits from seeds.

A model folder holds ``generator.safetensors`` (the EMA or raw weights of a ``gancodec train
gan`` run) and ``config.json`` (the network's :class:`~gancodec.models.dcgan.GANConfig`, the
loss, the training recipe). Noise comes from a seeded CPU generator and the network runs in
float32 with BN in inference mode, so the same seed and model give the same pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .errors import UserError
from .imageio import atomic_output, atomic_path
from .models.dcgan import GANConfig

WEIGHTS_FILE = "generator.safetensors"
DEFAULT_GAN = "mnist-dcgan"
DEFAULT_CONDITIONAL_GAN = "mnist-dcgan-cond"


def noise(n: int, nz: int, seed: int, truncation: float | None = None) -> torch.Tensor:
    """(n, nz) standard normal noise from ``seed``; with ``truncation`` T every entry with |z| > T
    is redrawn until it falls inside (BigGAN's truncation trick: less variety, cleaner samples)."""
    gen = torch.Generator().manual_seed(int(seed))
    z = torch.randn(n, nz, generator=gen)
    if truncation is not None:
        # Below ~0.05 the redraw loop would run practically forever (P(|z| < T) ≈ 0.8·T).
        if not truncation >= 0.05:
            raise UserError(f"truncation must be at least 0.05, got {truncation}")
        outside = z.abs() > truncation
        while outside.any():
            z[outside] = torch.randn(int(outside.sum()), generator=gen)
            outside = z.abs() > truncation
    return z


def latent_codes(n: int, k: int, seed: int) -> torch.Tensor:
    """(n,) categorical codes, uniform over ``k`` values, for a model with an InfoGAN code. Drawn
    from a stream derived from ``seed`` but apart from the noise's, so code and noise are
    independent."""
    return torch.randint(k, (n,), generator=_code_stream(seed))


def cluster_codes(n: int, prior: list[float], seed: int) -> torch.Tensor:
    """(n,) cluster ids drawn from ``prior`` (each cluster's share of the training images) for a
    self-conditioned model; from the same stream, apart from the noise's, as :func:`latent_codes`."""
    weights = torch.tensor(prior, dtype=torch.float64)
    return torch.multinomial(weights, n, replacement=True, generator=_code_stream(seed))


def _code_stream(seed: int) -> torch.Generator:
    """The random stream of a sample's code or cluster: derived from ``seed``, apart from the noise's."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0]))


def sample_conditions(config: GANConfig, n: int, seed: int) -> torch.Tensor | None:
    """The generator's second input for ``n`` samples when no digit is asked for: latent codes or
    clusters drawn from ``seed``, classes 0, 1, ..., 9, 0, ... for a conditional model, else None.
    ``generate`` and ``eval gan`` both draw them here."""
    if config.latent_codes:
        return latent_codes(n, config.latent_codes, seed)
    if config.clusters:
        return cluster_codes(n, config.cluster_prior, seed)
    return torch.arange(n) % config.num_classes if config.conditional else None


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    arr = ((x.float().clamp(-1, 1) + 1) * 127.5 + 0.5).floor().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: keeps the norm typical of Gaussian noise along the walk."""
    cos = (a * b).sum() / (a.norm() * b.norm())
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


class GANModel:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        meta = json.loads((self.folder / "config.json").read_text())
        if meta.get("kind") != "gan":
            raise UserError(f"{self.folder} is not a generator model")
        self.meta = meta
        self.name = meta.get("name", self.folder.name)
        self.config = GANConfig.from_dict(meta["gan_config"])
        self.net = self.config.build_generator()
        self.net.load_state_dict(load_file(str(self.folder / WEIGHTS_FILE)))
        self.net.eval().requires_grad_(False)

    @property
    def conditional(self) -> bool:
        return self.config.conditional

    def _labels(self, n: int, digit: int | None, seed: int) -> torch.Tensor | None:
        """The generator's second input: class labels, latent codes from ``seed``, or None."""
        if digit is not None:
            if not self.conditional:
                raise UserError(f"model {self.name} is not class-conditional: --digit needs a conditional model "
                                f"(e.g. {DEFAULT_CONDITIONAL_GAN})")
            if not 0 <= int(digit) < self.config.num_classes:
                raise UserError(f"digit must be 0..{self.config.num_classes - 1}, got {digit}")
            return torch.full((n,), int(digit), dtype=torch.int64)
        return sample_conditions(self.config, n, seed)

    @torch.no_grad()
    def run(self, z: torch.Tensor, labels: torch.Tensor | None, batch: int = 1000) -> np.ndarray:
        outs = [_to_uint8(self.net(z[i : i + batch], None if labels is None else labels[i : i + batch]))
                for i in range(0, len(z), batch)]
        return np.concatenate(outs)

    def generate(self, n: int, digit: int | None = None, seed: int | None = None,
                 truncation: float | None = None) -> np.ndarray:
        """``n`` images, uint8 (n, H, W) for greyscale models, (n, H, W, 3) for colour ones."""
        if n < 1:
            raise UserError(f"n must be at least 1, got {n}")
        seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else seed
        return self.run(noise(n, self.config.nz, seed, truncation), self._labels(n, digit, seed))

    def interpolate(self, seed_a: int, seed_b: int, steps: int, digit: int | None = None,
                    truncation: float | None = None) -> np.ndarray:
        """``steps`` images on the spherical path between the noise of two seeds (a conditional
        model walks at ``digit``, 0 by default; a model with a latent code or clusters at the
        code or cluster of ``seed_a``)."""
        if steps < 2:
            raise UserError(f"--steps must be at least 2, got {steps}")
        a, b = (noise(1, self.config.nz, s, truncation)[0] for s in (seed_a, seed_b))
        z = torch.stack([slerp(a, b, t) for t in np.linspace(0, 1, steps)])
        if (self.config.latent_codes or self.config.clusters) and digit is None:
            labels = self._labels(1, None, seed_a).expand(steps)
        else:
            labels = self._labels(steps, digit if digit is not None or not self.conditional else 0, seed_a)
        return self.run(z, labels)


def grid(images: np.ndarray, columns: int | None = None, gap: int = 2, background: int = 64) -> np.ndarray:
    """Tile (N, H, W[, C]) uint8 images into one image, ``columns`` wide (default: about square)."""
    n, h, w = images.shape[:3]
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    shape = (rows * (h + gap) + gap, columns * (w + gap) + gap) + images.shape[3:]
    out = np.full(shape, background, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        out[gap + r * (h + gap) : gap + r * (h + gap) + h, gap + c * (w + gap) : gap + c * (w + gap) + w] = im
    return out


def export_gan(run: Path, out: Path, name: str, ema: bool = True) -> Path:
    """Write a gan run's generator (EMA weights unless ``ema`` is False) as a model folder."""
    from .training.run import load_gan_checkpoint

    config, generator, state = load_gan_checkpoint(run, ema=ema)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        save_file({k: v.contiguous() for k, v in generator.state_dict().items()}, str(tmp))
    meta = {"name": name, "kind": "gan", "gan_config": config.to_dict(), "loss": state.get("loss"),
            "recipe": state.get("recipe", {}), "steps": int(state["step"]), "data": state.get("data"),
            "weights": "ema" if ema and "ema" in state else "raw"}
    with atomic_output(out / "config.json", "w") as fh:
        fh.write(json.dumps(meta, indent=2) + "\n")
    return out / WEIGHTS_FILE
