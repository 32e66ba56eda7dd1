"""Run by ``torchrun --nproc_per_node 2`` from test_training.py: a few DDP steps of both codec
stages on CPU (gloo); every rank saves its final weights for the test to compare. Then a toy run
under a time budget whose ranks start their clocks apart: they must still stop at the same step."""

import itertools
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from gancodec.models.codec import CodecConfig, HiFiCLite
from gancodec.training.codec_task import CodecGANTask, CodecRDTask
from gancodec.training.data import RandomCrops
from gancodec.training.trainer import Task, TrainConfig, Trainer, init_distributed


class SlowToy(Task):
    """A linear layer whose steps take ~20 ms, so the budget ends mid-run."""

    def __init__(self):
        self.net = torch.nn.Linear(4, 1)

    def networks(self):
        return {"net": self.net}

    def optimizers(self, nets):
        return {"net": torch.optim.SGD(nets["net"].parameters(), lr=0.01)}

    def train_step(self, batch, nets, opts, step):
        loss = nets["net"](batch).square().mean()
        opts["net"].zero_grad()
        loss.backward()
        opts["net"].step()
        time.sleep(0.02)
        return {"loss": loss.item()}


data_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
torch.set_num_threads(1)
rank, world = init_distributed("cpu")
assert world == 2
torch.manual_seed(rank)  # different init on each rank: DDP must broadcast rank 0's weights
model = HiFiCLite(CodecConfig(channels=16, latent_channels=16, hyper_channels=16, res_blocks=1))
for stage, task in (("rd", lambda: CodecRDTask(model)), ("gan", lambda: CodecGANTask(model))):
    data = RandomCrops([data_dir], crop=64, batch_size=2, seed=100 + rank)
    trainer = Trainer(task(), data, TrainConfig(steps=3, out_dir=out / stage, progress=False, sample_every=0,
                                                  device="cpu"))
    nets = trainer.fit()
    torch.save(next(data), out / f"{stage}_batch_rank{rank}.pt")
    state = {f"{name}.{k}": v for name, net in trainer.nets.items() for k, v in net.state_dict().items()}
    state.update({f"ema.{k}": v for k, v in trainer.ema.state_dict().items()})
    torch.save(state, out / f"{stage}_rank{rank}.pt")
trainer = Trainer(SlowToy(), itertools.repeat(torch.ones(2, 4)), TrainConfig(
    steps=10**6, out_dir=out / "budget", progress=False, sample_every=0, checkpoint_every=10**6, device="cpu",
    max_seconds=0.5))
if rank == 0:
    time.sleep(0.3)  # rank 1's clock starts 0.3 s (~15 steps) before rank 0's
trainer.fit()
torch.save(trainer.step, out / f"budget_steps_rank{rank}.pt")
dist.barrier()
dist.destroy_process_group()
