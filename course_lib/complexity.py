"""What a network costs and what it sees: multiply-adds, per-pixel cost and receptive fields  (lesson 05).

* :func:`count_macs` counts the multiply-adds (MACs) of the convolutions and matrix products in one call of any
  function (``torch.utils.flop_counter``: a FLOP count of 2 per multiply-add, halved). Element-wise work (biases,
  activations, residual additions, sines) is not counted: it is a few operations per value, against hundreds or
  thousands of multiply-adds per value in a convolution.
* :func:`count_step_macs` counts the same for a training step: the forward pass and the backward pass that
  computes the gradients (about twice the forward's products: one for the inputs' gradients, one for the weights').
* :func:`macs_per_pixel`: an encoder's MACs per LR pixel. For a stride-1, same-padded convolutional encoder every
  output pixel costs the same, ``sum over its convolutions of c_in * c_out * k * k``; that is its weight count
  (the parameters less the biases).
* :func:`receptive_field`: how many LR pixels one output feature can depend on, from the network's wiring (traced
  with ``torch.fx``): ``1 + sum of (k - 1) * dilation`` along the longest chain of stride-1 convolutions.
* :func:`gradient_receptive_field`: the same measured, as the non-zero support of the gradient of one output
  feature with respect to the input (float64, so that the tiny gradients at the edge of the field do not
  underflow to zero).
"""

from __future__ import annotations

import copy
import operator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import fx, nn

from .errors import CourseError

# Layers and functions that act pixel by pixel (or only join tensors): they pass the receptive field on unchanged.
_POINTWISE_MODULES = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Identity,
                      nn.Dropout)
_POINTWISE_FUNCTIONS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, torch.add,
                        torch.sub, torch.mul, torch.cat, torch.relu, torch.sigmoid, torch.tanh, torch.sin, F.relu,
                        F.leaky_relu, F.silu, F.gelu}
_POINTWISE_METHODS = {"add", "sub", "mul", "div", "relu", "sigmoid", "tanh", "sin", "contiguous", "clone"}


def count_macs(fn, *args, **kwargs) -> int:
    """Multiply-adds of the convolutions and matrix products in one call ``fn(*args, **kwargs)`` (lesson 05).

    Runs the call once without gradients under ``torch.utils.flop_counter.FlopCounterMode`` and halves its FLOP
    count (it counts a multiply-add as 2 FLOPs). Works for modules and plain functions alike, e.g.
    ``count_macs(model.upscale, lr, scale=4)``. Element-wise operations are not counted.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if not callable(fn):
        raise CourseError(f"count_macs needs a module or function to call, got {type(fn).__name__}")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops()) // 2


def count_step_macs(loss_fn) -> int:
    """Multiply-adds of one training step's convolutions and matrix products, forward and backward (lesson 04).

    Calls ``loss_fn()`` (no arguments; it returns a scalar loss tensor) and ``.backward()`` on its result under
    ``FlopCounterMode``, and halves the FLOP count. A linear layer on N rows of a inputs and b outputs costs N*a*b
    forward and N*a*b more for its weights' gradient, and N*a*b more again when its input needs a gradient too.
    The gradients accumulate in the parameters' ``.grad`` as in any backward pass: zero them before a real step.
    ``scripts/bench_runtime.py --train-step`` divides a step's count by its time.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if not callable(loss_fn):
        raise CourseError(f"count_step_macs needs a function that returns the loss, got {type(loss_fn).__name__}")
    with FlopCounterMode(display=False) as counter:
        loss = loss_fn()
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
            raise CourseError("count_step_macs: loss_fn must return a scalar tensor that requires grad (a loss "
                              "computed from the model's output, before .item() or .detach())")
        loss.backward()
    return int(counter.get_total_flops()) // 2


def macs_per_pixel(encoder: nn.Module, size=(16, 16), in_channels: int = 3) -> float:
    """An encoder's multiply-adds per LR pixel: :func:`count_macs` on a random (1, 3, h, w) input / (h * w).

    For the course's encoders (stride 1, same padding) this is the same at every size: the sum over the
    convolutions of ``c_in * c_out * k_h * k_w``. Notebook: 05_encoders.
    """
    h, w = _check_size(size)
    param = next(iter(encoder.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    x = torch.randn(1, in_channels, h, w, device=device, dtype=dtype)
    return count_macs(encoder, x) / (h * w)


def _check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    except (TypeError, ValueError, IndexError):
        raise CourseError(f"size must be an int or (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise CourseError(f"size must be positive, got {h}x{w}")
    return h, w


def receptive_field(module: nn.Module) -> tuple[int, int]:
    """(rows, cols) of the input region one output feature depends on, from the wiring (lesson 05).

    Traces ``module`` with ``torch.fx`` and follows every path from the input to the output: a stride-1
    convolution with a ``k x k`` kernel (dilation d) widens the field by ``(k - 1) * d``, point-wise layers,
    additions and concatenations keep it; where paths join, the widest wins. So the field is
    ``1 + sum of (k - 1) * d`` along the longest chain of convolutions: 69 for EDSR (34 chained 3x3
    convolutions), 263 for RDN (131). Strided convolutions, pooling and resampling are refused with a
    :class:`CourseError`, never guessed. Checked against :func:`gradient_receptive_field` in tests/test_encoders.py.
    """
    if not isinstance(module, nn.Module):
        raise CourseError(f"receptive_field needs an nn.Module, got {type(module).__name__}")
    try:
        traced = fx.symbolic_trace(nn.Sequential(module))  # wrapped, so that a lone layer is traced as a module
    except Exception as err:  # noqa: BLE001 - any tracing failure gets the same one-line answer
        raise CourseError(f"receptive_field cannot trace {type(module).__name__} with torch.fx "
                          f"({type(err).__name__}); measure it with gradient_receptive_field instead") from None
    subs = dict(traced.named_modules())
    reach: dict = {}  # node -> (extra rows, extra cols) seen beyond one pixel
    out = None
    for node in traced.graph.nodes:
        if node.op == "placeholder":
            reach[node] = (0, 0)
            continue
        inputs = [reach[a] for a in node.all_input_nodes if a in reach]
        if node.op == "output":
            out = inputs[0] if inputs else None
            continue
        if not inputs:  # a constant (get_attr) or something that does not depend on the input
            continue
        rows, cols = max(r for r, _ in inputs), max(c for _, c in inputs)
        if node.op == "call_module":
            sub = subs[node.target]
            if isinstance(sub, nn.Conv2d):
                if tuple(sub.stride) != (1, 1):
                    raise CourseError(f"receptive_field handles stride-1 convolutions only; {node.target} has "
                                      f"stride {tuple(sub.stride)}: use gradient_receptive_field")
                (kh, kw), (dh, dw) = sub.kernel_size, sub.dilation
                rows, cols = rows + (kh - 1) * dh, cols + (kw - 1) * dw
            elif not isinstance(sub, _POINTWISE_MODULES):
                raise CourseError(f"receptive_field does not know how {type(sub).__name__} ({node.target}) "
                                  "changes the field; use gradient_receptive_field")
        elif node.op == "call_function" and node.target not in _POINTWISE_FUNCTIONS:
            raise CourseError(f"receptive_field does not know how {getattr(node.target, '__name__', node.target)} "
                              "changes the field; use gradient_receptive_field")
        elif node.op == "call_method" and node.target not in _POINTWISE_METHODS:
            raise CourseError(f"receptive_field does not know how .{node.target}() changes the field; "
                              "use gradient_receptive_field")
        reach[node] = (rows, cols)
    if out is None:
        raise CourseError(f"the output of {type(module).__name__} does not depend on its input")
    return 1 + out[0], 1 + out[1]


class MeasuredField(NamedTuple):
    """What :func:`gradient_receptive_field` measured: the support's extent and the gradient map."""

    rows: int  # height of the smallest box holding every input pixel with a non-zero gradient
    cols: int  # its width
    grad: torch.Tensor  # (h, w) float64: |d feature / d input| summed over the input channels


def gradient_receptive_field(module: nn.Module, size=None, channel: int = 0, in_channels: int = 3,
                             dtype=torch.float64, seed: int = 0, inputs: torch.Tensor | None = None) -> MeasuredField:
    """Measure the receptive field: the support of d out[channel, centre] / d input (lesson 05).

    A copy of ``module`` in ``dtype`` (float64 by default: in float32 the gradient at the edge of a deep
    network's field, a product of over a hundred small factors, can underflow to zero) gets a random
    (1, ``in_channels``, h, w) input, or ``inputs`` (1, C, h, w) when given (a real image: the gradient of a
    non-linear network depends on its input); the gradient of output ``channel`` at the centre pixel is taken with
    respect to the input (on the CPU), and the extent of its non-zero entries is returned with the map. ``size``
    defaults to :func:`receptive_field` + 8 (odd). Refuses an input so small that the gradient touches its border
    (the field would be cut off). The module itself is left untouched. Notebook: 05_encoders.
    """
    if inputs is not None:
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or inputs.shape[0] != 1:
            raise CourseError("inputs must be one image as a (1, C, h, w) tensor")
        size = tuple(inputs.shape[-2:])
    elif size is None:
        rows, cols = receptive_field(module)
        size = (rows + 8 + (rows + 8 + 1) % 2, cols + 8 + (cols + 8 + 1) % 2)
    h, w = _check_size(size)
    probe = copy.deepcopy(module).cpu().to(dtype).eval()
    for p in probe.parameters():
        p.requires_grad_(False)
    if inputs is not None:
        x = inputs.detach().cpu().to(dtype).clone().requires_grad_(True)
    else:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(1, in_channels, h, w, generator=g, dtype=dtype).requires_grad_(True)
    out = probe(x)
    if out.dim() != 4 or not 0 <= channel < out.shape[1]:
        raise CourseError(f"channel must be in 0..{out.shape[1] - 1} of an output of shape {tuple(out.shape)}")
    out[0, channel, out.shape[2] // 2, out.shape[3] // 2].backward()
    grad = x.grad[0].abs().sum(0)
    nonzero = (grad > 0).nonzero()
    if len(nonzero) == 0:
        raise CourseError(f"output channel {channel} does not depend on the input at all (dead feature); "
                          "pick another channel")
    top, left = nonzero.min(0).values.tolist()
    bottom, right = nonzero.max(0).values.tolist()
    if top == 0 or left == 0 or bottom == h - 1 or right == w - 1:
        raise CourseError(f"the gradient reaches the border of the {h}x{w} input, so the field may be larger: "
                          "give a larger size")
    return MeasuredField(bottom - top + 1, right - left + 1, grad)
