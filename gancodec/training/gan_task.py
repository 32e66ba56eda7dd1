"""Training recipe of DCGAN-family generators on the shared trainer and GAN core.

One trainer step is one generator update. Per loss:

* ``ns`` (non-saturating), ``hinge``, ``lsgan`` — one discriminator update per step, Adam 2e-4,
  β = (0.5, 0.999) (pytorch/examples dcgan).
* ``wgan-gp`` — ``n_critic`` = 5 critic updates per step, each on its own real minibatch (the data
  stream hands out ``5 × batch`` digits), gradient penalty λ = 10, Adam 1e-4, β = (0.5, 0.9)
  (Gulrajani et al. 2017, their MNIST setting). So a WGAN-GP step costs about 4× another's: the
  study's "equal step budget" is equal *generator* updates.
* ``latent_codes`` K > 0 (InfoGAN, Chen et al. 2016; ns / hinge / lsgan): G also takes a code
  drawn uniformly from K values, D's auxiliary head Q predicts it from each fake, and both D (for
  Q) and G add ``info_weight`` × the cross-entropy of that prediction — the lower bound of the
  mutual information between code and image — to their losses. Q learns on the fakes of the D
  update and G on those of its own update, so a step costs no extra forward pass.
* ``augment`` (DiffAugment, :mod:`gancodec.gan.augment`; not with BEGAN): every image the
  discriminator sees, real or generated, in its update and in the generator's, goes through the
  same random differentiable transforms — the data-efficient GAN recipe for 10,000 training digits.
* ``clusters`` K > 0 (self-conditioned, :mod:`gancodec.generation.clusters`): the batch's
  labels are the k-means cluster ids of the images, and the step is the class-conditional one.
* ``began`` — the discriminator is an autoencoder; L_D = L(x) − k_t·L(G(z)), L_G = L(G(z)),
  k_t follows the equilibrium rule with γ = 0.75, λ_k = 0.001, and M_global is logged.

The EMA of the generator is the trainer's (``ema_network``). With an :class:`Evaluator`, every
``eval_every`` steps the task measures the EMA generator (and the raw one) with the judge and
returns the metrics among its scalars, so ``log.csv`` shows when a run collapsed. Values are
held between evaluations because the trainer averages scalars over each log window: an
evaluation falls on the first step of a window, so the window's average is that evaluation.

Autocast-safe: losses are computed on ``.float()`` logits, the gradient penalty and the
evaluation run with autocast disabled.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..gan import losses
from ..gan.augment import diff_augment
from ..models.dcgan import GANConfig
from ..precision import fp32_region
from .trainer import Task, unwrap

GAN_LOSSES = ("ns", "hinge", "lsgan", "wgan-gp", "began")
#: per-loss optimiser defaults: (lr, beta1, beta2, discriminator updates per step)
RECIPES = {
    "ns": (2e-4, 0.5, 0.999, 1),
    "hinge": (2e-4, 0.5, 0.999, 1),
    "lsgan": (2e-4, 0.5, 0.999, 1),
    "wgan-gp": (1e-4, 0.5, 0.9, 5),
    "began": (2e-4, 0.5, 0.999, 1),
}
METRIC_KEYS = ("classifier_fid", "mnist_score", "confident", "kl_uniform", "classes_missing", "precision",
               "recall", "density", "coverage")
SHORT = {"classifier_fid": "cfid", "kl_uniform": "kl", "classes_missing": "missing"}


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] → images in [0, 1]."""
    return (x.float().clamp(-1, 1) + 1) / 2


class Evaluator:
    """Judge metrics of a generator on a fixed set of noise vectors (and labels, or latent codes in
    equal shares), against the judge's features of real held-out digits, which are computed once."""

    def __init__(self, real: torch.Tensor, n: int = 2000, nz: int = 64, conditional: bool = False, seed: int = 1234,
                 judge: str = "mnist-judge", prdc_n: int = 2000, codes: int = 0,
                 cluster_prior: list[float] | None = None):
        from ..generator import cluster_codes

        gen = torch.Generator().manual_seed(seed)
        self.z = torch.randn(n, nz, generator=gen)
        self.labels = torch.arange(n) % 10
        self.codes = torch.arange(n) % codes if codes else None
        if cluster_prior is not None:  # a self-conditioned model samples clusters as it will when shipped
            self.codes = cluster_codes(n, cluster_prior, seed)
        self.conditional = conditional
        self.real = real
        self.judge_name = judge
        self.prdc_n = prdc_n
        self._real_feats: np.ndarray | None = None

    @torch.no_grad()
    def images(self, generator: nn.Module, batch: int = 500) -> torch.Tensor:
        device = next(generator.parameters()).device
        was_training = generator.training
        generator.eval()
        out = []
        with fp32_region(device.type):
            for i in range(0, len(self.z), batch):
                z = self.z[i : i + batch].to(device)
                y = self.labels if self.conditional else self.codes
                y = None if y is None else y[i : i + batch].to(device)
                out.append(to_unit(generator(z, y)))
        generator.train(was_training)
        return torch.cat(out)

    def __call__(self, generator: nn.Module) -> dict:
        from ..generation.judge import load_judge
        from ..generation.metrics import judge_metrics

        device = next(generator.parameters()).device
        judge = load_judge(self.judge_name, device)
        if self._real_feats is None:
            self._real_feats = judge.run(self.real)[0].cpu().numpy()
        feats, probs = judge.run(self.images(generator))
        return judge_metrics(feats.cpu().numpy(), probs.cpu().numpy(), self._real_feats,
                             self.labels.numpy() if self.conditional else None, prdc_n=self.prdc_n)


class GANTask(Task):
    def __init__(self, config: GANConfig, loss: str = "hinge", ema: bool = True, lr: float | None = None,
                 n_critic: int | None = None, gp_weight: float = 10.0, gamma: float = 0.75, lambda_k: float = 0.001,
                 evaluator: Evaluator | None = None, eval_every: int = 0, seed: int = 0, info_weight: float = 1.0,
                 augment: tuple[str, ...] = ()):
        if loss not in GAN_LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(GAN_LOSSES)}")
        if config.latent_codes and (loss in ("wgan-gp", "began") or (n_critic or 1) > 1):
            raise ValueError("a latent code (InfoGAN) is trained with the ns, hinge or lsgan loss")
        if (loss == "began") != config.began:
            raise ValueError("the began loss goes with BEGAN's autoencoder discriminator (config.began)")
        if augment and loss == "began":
            raise ValueError("DiffAugment is not used with BEGAN (its discriminator reconstructs its input)")
        self.config, self.loss = config, loss
        self.augment = tuple(augment)
        self.ema_network = "generator" if ema else None
        base_lr, b1, b2, critic = RECIPES[loss]
        self.lr, self.betas = lr or base_lr, (b1, b2)
        self.n_critic = n_critic or critic
        self.gp_weight, self.gamma, self.lambda_k = gp_weight, gamma, lambda_k
        self.info_weight = info_weight
        self.k = 0.0  # BEGAN's k_t, kept in the discriminator's optimiser state for resume
        self.generator = config.build_generator()
        self.disc = config.build_discriminator()
        self.evaluator, self.eval_every = evaluator, eval_every
        self.ema_source = None  # the trainer's EMA, attached after it is built (for evaluation)
        self.last_eval: dict[str, float] | None = None
        gen = torch.Generator().manual_seed(seed + 999)
        self.sample_z = torch.randn(20, config.nz, generator=gen)

    # -- the trainer's interface -----------------------------------------------------------------
    def networks(self):
        return {"generator": self.generator, "disc": self.disc}

    def optimizers(self, nets):
        return {name: torch.optim.Adam(nets[name].parameters(), lr=self.lr, betas=self.betas)
                for name in ("generator", "disc")}

    def attach_ema(self, ema) -> None:
        self.ema_source = ema

    def _noise(self, n: int, device) -> torch.Tensor:
        return torch.randn(n, self.config.nz, device=device)

    def train_step(self, batch, nets, opts, step):
        G, D = nets["generator"], nets["disc"]
        x = batch.images * 2 - 1
        y = batch.labels if self.config.label_conditions else None  # classes, or cluster ids
        if self.config.latent_codes:
            scalars = self._info_step(G, D, opts, x)
        elif self.loss == "began":
            scalars = self._began_step(G, D, opts, x, y)
        elif self.n_critic > 1:
            scalars = self._critic_steps(G, D, opts, x, y)
        else:
            scalars = self._step(G, D, opts, x, y)
        scalars.update(self._maybe_evaluate(nets, step))
        return scalars

    def _d_forward(self, D, images, labels):
        return D(images, labels) if labels is not None else D(images)

    def _aug(self, images: torch.Tensor) -> torch.Tensor:
        """What the discriminator is shown: ``images`` through the DiffAugment policy, if any."""
        return diff_augment(images, self.augment) if self.augment else images

    def _step(self, G, D, opts, x, y) -> dict[str, float]:
        """One D and one G update, sharing one generator forward (pytorch/examples dcgan)."""
        n = x.shape[0]
        fake = G(self._noise(n, x.device), y)
        logits = self._d_forward(D, self._aug(torch.cat([x, fake.detach()])),
                                 None if y is None else torch.cat([y, y])).float()
        d_loss = losses.d_loss(self.loss, logits[:n], logits[n:])
        opts["disc"].zero_grad(set_to_none=True)
        d_loss.backward()
        opts["disc"].step()
        g_loss = losses.g_loss(self.loss, self._d_forward(D, self._aug(fake), y).float())
        opts["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        opts["generator"].step()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(),
                "d_real": logits[:n].mean().item(), "d_fake": logits[n:].mean().item()}

    def _info_step(self, G, D, opts, x) -> dict[str, float]:
        """:meth:`_step` with InfoGAN's categorical code: D is unconditional, G gets the code."""
        n = x.shape[0]
        codes = torch.randint(self.config.latent_codes, (n,), device=x.device)
        fake = G(self._noise(n, x.device), codes)
        logits, code_logits = D(self._aug(torch.cat([x, fake.detach()])), with_codes=True)
        logits = logits.float()
        info_d = F.cross_entropy(code_logits[n:].float(), codes)
        d_loss = losses.d_loss(self.loss, logits[:n], logits[n:])
        opts["disc"].zero_grad(set_to_none=True)
        (d_loss + self.info_weight * info_d).backward()
        opts["disc"].step()
        fake_logits, code_logits = D(self._aug(fake), with_codes=True)
        info_g = F.cross_entropy(code_logits.float(), codes)
        g_loss = losses.g_loss(self.loss, fake_logits.float())
        opts["generator"].zero_grad(set_to_none=True)
        (g_loss + self.info_weight * info_g).backward()
        opts["generator"].step()
        code_acc = (code_logits.argmax(1) == codes).float().mean()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "d_real": logits[:n].mean().item(),
                "d_fake": logits[n:].mean().item(), "info": info_g.item(), "code_acc": code_acc.item()}

    def _critic_steps(self, G, D, opts, x, y) -> dict[str, float]:
        """WGAN-GP: ``n_critic`` critic updates on successive chunks of the batch, then G."""
        chunks = x.chunk(self.n_critic)
        labels = y.chunk(self.n_critic) if y is not None else [None] * len(chunks)
        for xr, yr in zip(chunks, labels):
            with torch.no_grad():
                fake = self._aug(G(self._noise(xr.shape[0], x.device), yr))
            xr = self._aug(xr)
            n = xr.shape[0]
            logits = self._d_forward(D, torch.cat([xr, fake]), None if yr is None else torch.cat([yr, yr])).float()
            wdist = logits[:n].mean() - logits[n:].mean()
            gp = losses.gradient_penalty(D, xr, fake, *(() if yr is None else (yr,)))  # float32 inside
            d_loss = -wdist + self.gp_weight * gp
            opts["disc"].zero_grad(set_to_none=True)
            d_loss.backward()
            opts["disc"].step()
        yg = labels[-1]
        fake = G(self._noise(chunks[-1].shape[0], x.device), yg)
        g_loss = losses.g_loss("wgan", self._d_forward(D, self._aug(fake), yg).float())
        opts["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        opts["generator"].step()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "wdist": wdist.item(), "gp": gp.item()}

    def _began_step(self, G, D, opts, x, y) -> dict[str, float]:
        n = x.shape[0]
        self.k = float(opts["disc"].state.get("began_k", self.k))  # after a resume: the saved k_t
        fake = G(self._noise(n, x.device), y)
        both = torch.cat([x, fake.detach()])
        recon = self._d_forward(D, both, None if y is None else torch.cat([y, y]))
        real_err = losses.began_recon_error(recon[:n], x)
        fake_err = losses.began_recon_error(recon[n:], both[n:])
        d_loss = losses.began_losses(real_err, fake_err, self.k)
        opts["disc"].zero_grad(set_to_none=True)
        d_loss.backward()
        opts["disc"].step()
        g_loss = losses.began_recon_error(self._d_forward(D, fake, y), fake)
        opts["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        opts["generator"].step()
        self.k, m_global = losses.began_update(self.k, real_err.item(), fake_err.item(), self.gamma, self.lambda_k)
        opts["disc"].state["began_k"] = self.k  # saved and restored with the optimiser's state dict
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "k": self.k, "m_global": m_global}

    # -- evaluation during training --------------------------------------------------------------
    def _maybe_evaluate(self, nets, step: int) -> dict[str, float]:
        if self.evaluator is None or not self.eval_every:
            return {}
        # the first call of a process always evaluates, so every CSV row has the same columns
        if self.last_eval is None or step % self.eval_every == 0:
            row: dict[str, float] = {"eval_step": float(step)}
            raw = unwrap(nets["generator"])
            raw = getattr(raw, "_orig_mod", raw)  # a torch.compile wrapper: evaluate the plain module
            targets = [("", raw)]
            if self.ema_source is not None:
                targets = [("", self.ema_source.shadow), ("raw_", raw)]
            for prefix, gen in targets:
                m = self.evaluator(gen)
                keys = METRIC_KEYS + (("agreement",) if self.config.conditional else ())
                row.update({prefix + SHORT.get(k, k): float(m[k]) for k in keys})
            self.last_eval = row
        return dict(self.last_eval)

    @torch.no_grad()
    def sample(self, batch, nets):
        G = nets["generator"]
        device = next(G.parameters()).device
        k = self.config.generator_conditions
        y = (torch.arange(20, device=device) % k) if k else None
        return to_unit(G(self.sample_z.to(device), y))
