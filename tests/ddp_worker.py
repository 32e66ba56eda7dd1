"""Run by ``torchrun --nproc_per_node 2`` from test_training.py: a few DDP steps of both codec
stages on CPU (gloo); every rank saves its final weights for the test to compare."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from gancodec.models.codec import CodecConfig, HiFiCLite
from gancodec.training.codec_task import CodecGANTask, CodecRDTask
from gancodec.training.data import RandomCrops
from gancodec.training.trainer import TrainConfig, Trainer, init_distributed

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
dist.barrier()
dist.destroy_process_group()
