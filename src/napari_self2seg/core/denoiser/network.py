"""The Noise2Fast network used for each denoising expert (paper §3.2, Fig. 4)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Noise2FastNet(nn.Module):
    """Plain convolutional denoiser with a sigmoid head.

    Input is reflect-padded by one pixel; the first 3×3 convolution has no
    padding, every further 3×3 convolution reflect-pads by one, so the output
    has the input's size. ``n_blocks`` blocks of two 3×3 convolutions with ReLU
    are followed by a 1×1 convolution and a sigmoid (outputs in (0, 1), matching
    the [0, 1]-normalised image). The paper uses ``width=64``, ``n_blocks=4``.

    Weights and activations use the channels-last memory layout, which the
    oneDNN/cuDNN convolutions run faster on (same arithmetic; measured in
    ``benchmarks/step_time.py``).

    Parameters
    ----------
    width : int
        Channels of the hidden layers.
    n_blocks : int
        Number of two-convolution blocks.
    channels : int
        Image channels C, in and out: the network denoises all channels
        jointly, so an expert can use the colour of a region.
    generator : torch.Generator or None
        Source of randomness for the weight initialisation (Kaiming-uniform,
        as torch's default), so that seeded runs are reproducible without
        touching the global RNG.
    """

    def __init__(
        self, width: int = 64, n_blocks: int = 4, *, channels: int = 1, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        convs = [nn.Conv2d(channels, width, 3, padding=0)]
        convs.append(nn.Conv2d(width, width, 3, padding=1, padding_mode="reflect"))
        for _ in range(n_blocks - 1):
            convs.append(nn.Conv2d(width, width, 3, padding=1, padding_mode="reflect"))
            convs.append(nn.Conv2d(width, width, 3, padding=1, padding_mode="reflect"))
        self.convs = nn.ModuleList(convs)
        self.head = nn.Conv2d(width, channels, 1)
        self._init_weights(generator)
        for conv in [*self.convs, self.head]:
            conv.weight = nn.Parameter(conv.weight.detach().contiguous(memory_format=torch.channels_last))

    def _init_weights(self, generator: torch.Generator | None) -> None:
        """Torch's default Conv2d initialisation, drawn from ``generator``."""
        with torch.no_grad():
            for conv in [*self.convs, self.head]:
                nn.init.kaiming_uniform_(conv.weight, a=5**0.5, generator=generator)
                if conv.bias is not None:
                    bound = 1.0 / conv.weight[0].numel() ** 0.5
                    nn.init.uniform_(conv.bias, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise a batch ``(N, C, H, W)``; returns the same shape, values in (0, 1)."""
        x = F.pad(x.contiguous(memory_format=torch.channels_last), (1, 1, 1, 1), mode="reflect")
        for conv in self.convs:
            x = F.relu(conv(x))
        return torch.sigmoid(self.head(x))
