"""Generation: MNIST parsing, the metrics on known answers, a few steps of every loss, resume,
export → load → generate, seed determinism and ``--digit`` with and without a conditional model.

Training uses synthetic digit-like images (no ../shared needed) and tiny networks."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch

from gancodec.cli import main
from gancodec.generation import metrics
from gancodec.generation.data import LabeledBatch, load_mnist, synthetic_digits
from tests.conftest import SHARED_DATA

MNIST = SHARED_DATA / "mnist"
TINY = ["--width", "8", "--nz", "8", "--batch-size", "8", "--no-progress", "--device", "cpu", "--precision", "fp32",
        "--log-every", "1", "--sample-every", "0", "--checkpoint-every", "2"]


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    """A tiny MNIST-format folder (idx + CSV) of synthetic digits: the real layout, no real data."""
    d = tmp_path_factory.mktemp("mnist")
    images, labels = synthetic_digits(64, seed=0)
    header = bytes([0, 0, 8, 3]) + b"".join(int(v).to_bytes(4, "big") for v in images.shape)
    with gzip.open(d / "t10k-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(header + images.tobytes())
    with gzip.open(d / "t10k-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big") + labels.astype(np.uint8).tobytes())
    held, held_labels = synthetic_digits(32, seed=1)
    rows = np.concatenate([held.reshape(len(held), -1), held_labels[:, None]], axis=1)
    with gzip.open(d / "mnist_5k.csv.gz", "wt") as fh:
        np.savetxt(fh, rows, fmt="%d", delimiter=",")
    return d


def test_mnist_files_parse(mnist_dir):
    images, labels = load_mnist(f"mnist:{mnist_dir}")
    ref, ref_labels = synthetic_digits(64, seed=0)
    assert np.array_equal(images, ref) and np.array_equal(labels, ref_labels)
    held, held_labels = load_mnist(f"mnist:{mnist_dir}", "heldout")
    assert held.shape == (32, 28, 28) and held_labels.shape == (32,)


@pytest.mark.skipif(not MNIST.is_dir(), reason="../shared/data/mnist is absent")
def test_real_mnist_split_sizes():
    images, labels = load_mnist(f"mnist:{MNIST}")
    held, _ = load_mnist(f"mnist:{MNIST}", "heldout")
    assert images.shape == (10000, 28, 28) and held.shape == (5000, 28, 28) and set(labels) == set(range(10))


def test_batch_supports_what_the_trainer_does():
    b = LabeledBatch(torch.rand(6, 1, 28, 28), torch.arange(6))
    small = b[:4].to("cpu", non_blocking=True)
    assert small.images.shape == (4, 1, 28, 28) and small.labels.tolist() == [0, 1, 2, 3]


# -- metrics on known answers ------------------------------------------------------------------------
def test_identical_sets_have_distance_zero_and_full_precision_recall():
    feats = np.random.default_rng(0).normal(size=(300, 16))
    assert metrics.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    pr = metrics.prdc(feats, feats)
    assert pr["precision"] == 1.0 and pr["recall"] == 1.0 and pr["coverage"] == 1.0
    # every ball holds its centre and k neighbours, so identical sets have density (k + 1) / k
    assert pr["density"] == pytest.approx((metrics.K + 1) / metrics.K)


def test_shifted_gaussian_distance_is_squared_mean_shift():
    feats = np.random.default_rng(0).normal(size=(4000, 4))
    assert metrics.frechet_distance(feats, feats + 2.0) == pytest.approx(16.0, rel=1e-6)


def test_one_class_only_has_kl_log10_and_score_one():
    hist = metrics.class_histogram(np.full(100, 3))
    assert hist["kl_uniform"] == pytest.approx(math.log(10)) and hist["classes_missing"] == 9
    probs = np.zeros((50, 10))
    probs[:, 3] = 1
    assert metrics.mnist_score(probs) == pytest.approx(1.0)
    uniform = np.eye(10)[np.arange(100) % 10]
    assert metrics.mnist_score(uniform) == pytest.approx(10.0, rel=1e-6)
    assert metrics.class_histogram(np.arange(100) % 10)["kl_uniform"] == pytest.approx(0.0)


def test_agreement_and_confidence():
    probs = np.eye(10)[np.arange(20) % 10] * 0.95 + 0.005
    m = metrics.judge_metrics(np.zeros((20, 4)), probs, None, requested=(np.arange(20) + 1) % 10)
    assert m["agreement"] == 0.0 and m["confident"] == 1.0


# -- training, resume, export, generation ------------------------------------------------------------
def _train(mnist_dir, out, loss, steps, *extra):
    return main(["train", "gan", "--data", f"mnist:{mnist_dir}", "--loss", loss, "--steps", str(steps),
                 "--out", str(out), *TINY, *extra])


@pytest.mark.parametrize("loss", ["ns", "hinge", "lsgan", "wgan-gp", "began"])
def test_every_loss_trains_a_few_steps(tmp_path, mnist_dir, loss):
    assert _train(mnist_dir, tmp_path / loss, loss, 2, "--conditional" if loss in ("hinge", "began") else "--ema") == 0
    rows = (tmp_path / loss / "log.csv").read_text().splitlines()
    assert len(rows) == 3 and "g_loss" in rows[0]
    if loss == "began":
        assert "k" in rows[0].split(",") and "m_global" in rows[0]


def test_resume_continues_the_same_run(tmp_path, mnist_dir):
    run = tmp_path / "run"
    assert _train(mnist_dir, run, "hinge", 2) == 0
    assert _train(mnist_dir, run, "hinge", 4, "--resume") == 0
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 4 and "ema" in state
    assert len((run / "log.csv").read_text().splitlines()) == 5


def test_time_budget_stops_gan_training(tmp_path, mnist_dir, capsys):
    """--time-budget ends a gan run with a checkpoint long before --steps (it was once ignored);
    the run says at its start what it will do, in hours (a budget meant in seconds shows)."""
    run = tmp_path / "budget"
    assert _train(mnist_dir, run, "lsgan", 1_000_000, "--time-budget", "0.002") == 0
    assert "from step 0 to 1000000 or 0.00 h of training" in capsys.readouterr().err
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert 1 <= state["step"] < 1_000_000


def test_deeper_pair_trains_resumes_and_keeps_its_depth(tmp_path, mnist_dir):
    """--g-depth / --d-depth add 3×3 layers per resolution; a resume keeps the run's depths."""
    from gancodec.models.dcgan import GANConfig

    run = tmp_path / "deep"
    assert _train(mnist_dir, run, "lsgan", 2, "--g-depth", "1", "--d-depth", "2") == 0
    assert _train(mnist_dir, run, "lsgan", 4, "--resume") == 0
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert (state["config"]["g_depth"], state["config"]["d_depth"], state["step"]) == (1, 2, 4)
    # 2 resolutions (28 → 14 → 7) × 2 extra + 2 at the last one, around the 2 stride-2 layers
    assert len({k.split(".")[1] for k in state["nets"]["disc"] if k.startswith("convs.")}) == 8
    assert "refine.1.convs.0.weight" in state["nets"]["generator"]
    # depth 0 is the study's DCGAN pair, parameter for parameter (shipped weights load)
    plain, base = GANConfig(), GANConfig(g_depth=0, d_depth=0)
    assert plain.build_generator().state_dict().keys() == base.build_generator().state_dict().keys()
    assert not any("refine" in k for k in plain.build_generator().state_dict())
    assert _train(mnist_dir, tmp_path / "bad", "began", 2, "--d-depth", "1") == 2


def test_latent_code_trains_resumes_and_reads_back(tmp_path, mnist_dir):
    """InfoGAN: the code head's cross-entropy is logged, and a resume keeps the code."""
    run = tmp_path / "info"
    assert _train(mnist_dir, run, "lsgan", 2, "--latent-codes", "3") == 0
    assert _train(mnist_dir, run, "lsgan", 4, "--resume") == 0  # the run's code, not the command line's
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["config"]["latent_codes"] == 3 and state["step"] == 4
    assert state["nets"]["disc"]["code_head.2.weight"].shape[0] == 3
    header = (run / "log.csv").read_text().splitlines()[0].split(",")
    assert "info" in header and "code_acc" in header
    assert _train(mnist_dir, tmp_path / "bad", "wgan-gp", 2, "--latent-codes", "3") == 2
    assert _train(mnist_dir, tmp_path / "bad2", "ns", 2, "--latent-codes", "3", "--conditional") == 2


def test_diffaugment_transforms_are_differentiable_and_exact():
    """Translation moves content by whole pixels over zeros; cutout zeros one half-side square."""
    from gancodec.gan.augment import cutout, diff_augment, parse_policy, translation

    torch.manual_seed(0)
    x = torch.arange(1.0, 65.0).view(1, 1, 8, 8).repeat(16, 1, 1, 1)
    for img in translation(x):  # each is a shift of the original by at most 1/8 of the side
        shifts = [(dy, dx) for dy in range(-1, 2) for dx in range(-1, 2)
                  if torch.equal(img[0], _shifted(x[0, 0], dy, dx))]
        assert len(shifts) == 1
    zeros = (cutout(torch.ones(64, 1, 8, 8)) == 0).sum(dim=(1, 2, 3))
    assert zeros.max() == 16 and zeros.min() > 0  # a 4×4 square, clipped where it hangs over an edge
    y = torch.rand(4, 3, 8, 8, requires_grad=True)
    diff_augment(y, parse_policy("translation,cutout,color")).sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert parse_policy("") == () and parse_policy(None) == ()
    with pytest.raises(ValueError, match="unknown DiffAugment policy flip"):
        parse_policy("translation,flip")


def _shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    out = torch.zeros_like(img)
    h, w = img.shape
    out[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = img[max(0, dy) : h - max(0, -dy),
                                                                           max(0, dx) : w - max(0, -dx)]
    return out


def test_diffaugment_trains_and_resume_keeps_the_policy(tmp_path, mnist_dir):
    run = tmp_path / "da"
    assert _train(mnist_dir, run, "lsgan", 2, "--diffaugment", "translation,cutout") == 0
    assert _train(mnist_dir, run, "lsgan", 4, "--resume") == 0  # the run's policy, not the command line's
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["recipe"]["diffaugment"] == ["translation", "cutout"] and state["step"] == 4
    assert _train(mnist_dir, tmp_path / "gp", "wgan-gp", 2, "--diffaugment", "translation") == 0
    assert _train(mnist_dir, tmp_path / "bad", "began", 2, "--diffaugment", "translation") == 2
    assert _train(mnist_dir, tmp_path / "bad2", "lsgan", 2, "--diffaugment", "rotate") == 2


def test_kmeans_finds_separated_groups_deterministically():
    from gancodec.generation.clusters import cluster_prior, kmeans

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (4, 6))
    truth = np.repeat(np.arange(4), [50, 30, 15, 5])
    x = centres[truth] + rng.normal(0, 0.1, (len(truth), 6))
    labels = kmeans(x, 4, seed=3)
    assert np.array_equal(labels, kmeans(x, 4, seed=3))
    # the same partition as the truth, up to the names of the clusters
    assert len({(a, b) for a, b in zip(truth, labels)}) == 4
    assert sorted(cluster_prior(labels, 4)) == pytest.approx([0.05, 0.15, 0.30, 0.50])
    with pytest.raises(ValueError):
        kmeans(x, 1)


def test_self_conditioned_model_trains_resumes_and_samples_without_labels(tmp_path, mnist_dir, capsys):
    """--self-condition K: the pair trains on k-means cluster ids (kept in the checkpoint, so a
    resume trains on the same ones), and the exported model draws clusters by their share: an
    unconditional model (no --digit), same seed → same pixels."""
    from gancodec.generator import GANModel

    run = tmp_path / "sc"
    assert _train(mnist_dir, run, "lsgan", 2, "--self-condition", "4", "--eval-every", "2", "--eval-n", "40") == 0
    first = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert _train(mnist_dir, run, "lsgan", 4, "--resume") == 0
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 4 and state["config"]["clusters"] == 4
    assert torch.equal(state["cluster_labels"], first["cluster_labels"]) and len(state["cluster_labels"]) == 64
    assert sum(state["config"]["cluster_prior"]) == pytest.approx(1.0)
    projection = [v for k, v in state["nets"]["disc"].items() if k.startswith("project.") and v.ndim == 2]
    assert projection and projection[0].shape[0] == 4  # D projects on the cluster id
    assert main(["train", "export", str(run), "--out", str(tmp_path / "m")]) == 0
    model = GANModel(tmp_path / "m")
    assert not model.conditional
    assert np.array_equal(model.generate(12, seed=5), model.generate(12, seed=5))
    assert model.interpolate(1, 2, 3).shape[0] == 3
    report = tmp_path / "eval.json"  # eval gan draws the clusters as generate does
    assert main(["eval", "gan", str(tmp_path / "m"), "-n", "40", "--real", f"mnist:{mnist_dir}", "--no-floor",
                 "--json", str(report), "--device", "cpu"]) == 0
    digit = ["generate", "-n", "2", "--digit", "1", "--model", str(tmp_path / "m"), "-o", str(tmp_path / "x.png")]
    assert main(digit) == 2
    assert "not class-conditional" in capsys.readouterr().err
    for extra in (["--conditional"], ["--latent-codes", "3"]):
        assert _train(mnist_dir, tmp_path / "bad", "lsgan", 2, "--self-condition", "4", *extra) == 2
    assert _train(mnist_dir, tmp_path / "bad2", "began", 2, "--self-condition", "4") == 2


def test_latent_code_model_samples_every_code_reproducibly(models):
    import gancodec
    from gancodec.generator import latent_codes

    a = gancodec.generate(8, seed=5, model=str(models["codes"]))
    assert np.array_equal(a, gancodec.generate(8, seed=5, model=str(models["codes"])))
    codes = latent_codes(4000, 4, seed=5)
    assert np.array_equal(codes, latent_codes(4000, 4, seed=5))
    shares = np.bincount(codes.numpy(), minlength=4) / 4000
    assert np.all(np.abs(shares - 0.25) < 0.03)
    with pytest.raises(gancodec.UserError, match="not class-conditional"):
        gancodec.generate(2, digit=1, model=str(models["codes"]))


@pytest.fixture(scope="module")
def models(tmp_path_factory, mnist_dir):
    root = tmp_path_factory.mktemp("gan")
    out = {}
    for name, extra in (("uncond", []), ("cond", ["--conditional"]), ("codes", ["--latent-codes", "4"])):
        run = root / f"run-{name}"
        assert _train(mnist_dir, run, "ns", 2, *extra) == 0
        assert main(["train", "export", str(run), "--out", str(root / name)]) == 0
        out[name] = root / name
    return out


def test_same_seed_same_pixels(models):
    import gancodec

    a = gancodec.generate(6, seed=7, model=str(models["uncond"]))
    b = gancodec.generate(6, seed=7, model=str(models["uncond"]))
    c = gancodec.generate(6, seed=8, model=str(models["uncond"]))
    assert a.dtype == np.uint8 and a.shape == (6, 28, 28)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    t = gancodec.generate(6, seed=7, model=str(models["uncond"]), truncation=0.5)
    assert t.shape == a.shape


def test_digit_needs_a_conditional_model(models, tmp_path, capsys):
    import gancodec

    digits = gancodec.generate(4, digit=3, seed=0, model=str(models["cond"]))
    assert digits.shape == (4, 28, 28)
    with pytest.raises(gancodec.UserError, match="not class-conditional"):
        gancodec.generate(4, digit=3, model=str(models["uncond"]))
    assert main(["generate", "-n", "3", "--digit", "3", "-o", str(tmp_path / "x.png"),
                 "--model", str(models["uncond"])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gancodec: error:") and "conditional" in err and len(err.splitlines()) == 1


def test_generate_cli_grid_folder_and_interpolation(models, tmp_path):
    from PIL import Image

    assert main(["generate", "-n", "12", "--seed", "1", "-o", str(tmp_path / "g.png"),
                 "--model", str(models["cond"])]) == 0
    assert main(["generate", "-n", "3", "--seed", "1", "--digit", "5", "-o", str(tmp_path / "dir"),
                 "--model", str(models["cond"])]) == 0
    files = sorted((tmp_path / "dir").glob("*.png"))
    assert len(files) == 3 and Image.open(files[0]).size == (28, 28)
    assert main(["generate", "--interpolate", "1,2", "--steps", "5", "-o", str(tmp_path / "s.png"),
                 "--model", str(models["uncond"])]) == 0
    assert Image.open(tmp_path / "s.png").size == (5 * 30 + 2, 32)


@pytest.mark.skipif(not MNIST.is_dir(), reason="../shared/data/mnist is absent")
def test_eval_gan_reports_every_metric(models, tmp_path):
    import json

    out = tmp_path / "eval.json"
    assert main(["eval", "gan", str(models["cond"]), "-n", "200", "--real", f"mnist:{MNIST}", "--no-floor",
                 "--json", str(out), "--device", "cpu"]) == 0
    m = json.loads(out.read_text())["metrics"]
    for key in ("classifier_fid", "mnist_score", "kl_uniform", "confident", "precision", "recall", "density",
                "coverage", "agreement", "classes_missing"):
        assert key in m
    assert 1.0 <= m["mnist_score"] <= 10.0


@pytest.mark.skipif(not MNIST.is_dir(), reason="../shared/data/mnist is absent")
def test_shipped_judge_is_accurate_on_heldout_digits():
    from gancodec.generation.judge import accuracy, load_judge

    held, labels = load_mnist(f"mnist:{MNIST}", "heldout")
    assert accuracy(load_judge(), held[::5], labels[::5]) >= 0.98  # the CSV is in class order
