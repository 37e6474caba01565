"""A hand-written PyTorch ResNet-20 for CIFAR-10 (He et al. 2016, §4.2, option A shortcuts), the peer that
`papers/resnet/peer_benchmark.py` times our Keras train step against. Not part of the library: nothing in
common/ or papers/ imports it, and PyTorch is only in requirements-peer.txt.

It is the same network and step as papers/resnet: 3x3 convolutions without bias, batch normalisation,
16/32/64 filters, identity shortcuts that subsample and zero-pad the channels, global average pooling and a
10-way linear layer; cross-entropy, SGD with momentum 0.9 and weight decay 1e-4 on every parameter.

    python peers/resnet_torch.py --steps=30 [--channels_last] [--compile] [--bf16]   # prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from torch import nn
from torch.nn import functional as F


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.pad:  # option A: the new channels are zeros, half before and half after
            shortcut = F.pad(shortcut, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(y + shortcut)


class ResNet(nn.Module):
    def __init__(self, depth: int = 20, classes: int = 10):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        blocks, cin = [], 16
        for stage, cout in enumerate((16, 32, 64)):
            for b in range(n):
                blocks.append(Block(cin, cout, 2 if stage and not b else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


def measure(depth: int, batch: int, steps: int, warmup: int, channels_last: bool, compile_model: bool,
            device: str, bf16: bool = False) -> dict:
    torch.manual_seed(0)
    model = ResNet(depth).to(device)
    x = torch.randn(batch * 4, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch * 4,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def step(xb, yb):
        optimizer.zero_grad(set_to_none=True)
        # bf16: autocast's mixed precision (bfloat16 arithmetic, float32 weights), like Keras' mixed_bfloat16
        with torch.autocast(device_type="cuda" if device != "cpu" else "cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss

    if compile_model:
        step = torch.compile(step)
    model.train()
    start = None
    for i in range(warmup + steps):
        if i == warmup:
            if device != "cpu":
                torch.cuda.synchronize()
            start = time.perf_counter()
        k = i % 4
        loss = step(x[k * batch:(k + 1) * batch], y[k * batch:(k + 1) * batch])
    loss.item()  # the last step has really finished
    seconds = time.perf_counter() - start
    return {"images_per_s": steps * batch / seconds, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if device != "cpu" else platform.processor() or "cpu",
            "parameters": sum(p.numel() for p in model.parameters())}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup_steps", type=int, default=5)
    parser.add_argument("--channels_last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the train step")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (mixed precision)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.depth, args.batch_size, args.steps, args.warmup_steps, args.channels_last,
                             args.compile, args.device, args.bf16)))


if __name__ == "__main__":
    main()
