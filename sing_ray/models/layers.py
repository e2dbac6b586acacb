"""Small layers the encoders and the decoder share."""
from __future__ import annotations

import torch
from torch import nn

from ..dsp import hann_window


class WindowedConv1d(nn.Conv1d):
    """Conv1d whose kernel is multiplied by a squared Hann window at every call.

    The window makes each learnt filter taper to zero at its ends, so that the strided
    frames the learnt encoder reads blend without clicks (the transposed conv head windows
    its kernel the same way).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("window", hann_window(self.kernel_size[0], squared=True), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.window, self.bias)


def rewrite_convs(channels: int, layers: int) -> list[nn.Module]:
    """``layers`` blocks of a 1x1 conv of ``channels`` and a ReLU: the "rewrite" layers of SING."""
    out: list[nn.Module] = []
    for _ in range(layers):
        out += [nn.Conv1d(channels, channels, 1), nn.ReLU()]
    return out


def pointwise_parameters(inputs: int, outputs: int) -> tuple[nn.Parameter, nn.Parameter]:
    """The weight ``(outputs, inputs, 1)`` and bias ``(outputs,)`` of ``nn.Conv1d(inputs, outputs, 1)``.

    A head that reads one hidden row per frame is a 1x1 conv; it keeps the conv's layout
    (what checkpoints store) and PyTorch's default initialisation, drawn in the same order as
    before the decoder had heads, so that a seed still builds the same weights.
    """
    conv = nn.Conv1d(inputs, outputs, 1)
    return conv.weight, conv.bias
