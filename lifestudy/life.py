"""LIFE — the Local InFormation Enhancer — as a drop-in for a ViT attention block's ``qkv``.

Akkaya, Kathiresan, Arani, Zonooz, "Enhancing Performance of Vision Transformers on Small
Datasets through Local Inductive Bias Incorporation", arXiv 2305.08551 (Pattern Recognition
2024); official code: ``MultiscaleQKV`` in the authors' LIFE repository (built on VTPack).
Hooks into timm (Wightman, github.com/huggingface/pytorch-image-models): ``Attention``,
``VisionTransformer``, ``SwinTransformerV2``.

LIFE replaces the linear ``qkv`` projection. Its input is the block's tokens ``(B, N, C)``;
its output is ``(B, N, 3C)`` in timm's ``q | k | v`` layout, so timm's ``Attention.forward``
runs unchanged. With S = ``len(kernel_sizes) + 1`` scales (3 by default):

1. scale 1: a pointwise projection (``nn.Linear``, the only part with a bias) over every token;
2. scale s > 1: a depthwise ``k x k`` convolution (zero padding, no bias) over the patch grid of
   scale s-1's output, then a pointwise projection (no bias). Scales are *cascaded*, so with
   ``kernel_sizes=(3, 5)`` scale 2 sees a 3x3 neighbourhood and scale 3 a 7x7 one.

Each scale s emits ``3 * C_s`` channels, laid out ``[q_s | k_s | v_s]``; the output is
``Q = [q_1 | q_2 | q_3]`` (likewise K and V), so within each of q, k and v the first
``C_1`` channels come from scale 1, the next ``C_2`` from scale 2, the last ``C_3`` from scale 3
(since heads split channels in order, each of DeiT-T's 3 heads sees exactly one scale).
``C_1 + C_2 + C_3 = C``; when C does not divide by S the first ``C % S`` scales get one
channel more (C=100: 34, 33, 33). With C divisible by 3 every scale maps C -> C, as in the paper.

Prefix tokens (class, distillation, register tokens; ``num_prefix_tokens`` as timm says it)
have no spatial neighbours: they take the pointwise path of every scale, and no patch token
ever changes their q/k/v.

The patch grid ``(gh, gw)`` is never derived from ``sqrt(N)``: it is passed to ``forward``,
set with :func:`set_grid_size`, or recorded on every LIFE of a model by the patch-embed hook
that :func:`apply_life` installs (so rectangular inputs and timm's ``dynamic_img_size`` work).
The hook computes the grid from the image's shape with integer arithmetic only
(:func:`patch_grid`), so it also runs inside ``torch.fx`` / ``torch.export`` / ``torch.compile``
traces, where the grid becomes a value of the traced graph (right for every input size), and it
compiles under ``torch.jit.script`` (see :func:`_record_grid`).

Where we differ from the official code (and why):

- it assumes exactly one auxiliary token and a square grid (``int(sqrt(N - 1))``); we take any
  number of prefix tokens and any ``gh x gw`` grid;
- for the auxiliary token its K concatenates the scale-1 key three times (a slip: Q and V take
  scales 1, 2, 3); we follow the paper: every token's K is ``[k_1 | k_2 | k_3]``;
- the arithmetic is laid out for speed: the whole module is one autograd function
  (:class:`_LIFEFunction`) with a hand-written backward pass. Prefix and patch tokens run as
  two streams of dense matrices; the patch stream is a channels-last image the depthwise
  convs read and write without copies, the pointwise convs are matmuls, and each scale's
  output is copied once into its slots of the q|k|v layout (the official code slices and
  concatenates per part, and its NCHW convs are several times slower on CPU). For backward it
  saves its input, its output (attention saves q, k, v, views of it, anyway) and the last
  depthwise conv's output, and recomputes the other convs: its training activations stay
  within a few per cent of a plain ``qkv``'s. On CPU the depthwise convs' backward pass goes
  around oneDNN's slow weight gradient for kernels wider than 3 (:func:`_depthwise_backward`).
  On grids of at most ``GRID_MATRIX_MAX_CELLS`` (16) cells, such as the cpu profile's 4x4,
  training takes :class:`_LIFEGridFunction` instead: every token in one channels-first
  stream, each depthwise conv a batched matmul by one (N, N) matrix per channel built from
  its kernel (prefix tokens pass through it unchanged), since on such grids the per-call cost
  of oneDNN's convs is most of their time (measured beside the constant). There,
  :func:`apply_life` also makes each timm ``Attention`` a :class:`LIFEAttention`: with one
  head per scale (DeiT-micro's and DeiT-T's 3) it runs LIFE and the softmax attention as one
  autograd function (:class:`_LIFEAttentionGridFunction`) whose heads read q, k and v where
  LIFE writes them, channels-first, so neither pass copies them into timm's q|k|v layout and
  back; elsewhere it is timm's ``Attention``, calling LIFE as its ``qkv``.
  :meth:`LIFE.forward_reference` keeps the previous eager path (modules and autograd); the
  tests hold all of them to the same outputs and gradients, and ``benchmarks/life_layout.py``
  times them. The function computed is the same.
"""

import copy
import functools
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import register_notrace_module
from timm.models.vision_transformer import Attention
from torch import nn
from torch.autograd.function import once_differentiable

from lifestudy.errors import ConfigError, UnsupportedModelError

__all__ = [
    "LIFE", "LIFEAttention", "DepthwiseConv2d", "QKVFeatures", "apply_life", "set_grid_size", "patch_grid",
    "split_channels", "life_modules",
]


def split_channels(dim: int, num_scales: int = 3) -> tuple[int, ...]:
    """Channels per scale: ``dim`` split into ``num_scales`` parts, the first ``dim % num_scales``
    parts one channel wider (100 -> (34, 33, 33))."""
    base, extra = divmod(dim, num_scales)
    if base == 0:
        raise ConfigError(f"LIFE needs at least {num_scales} channels for {num_scales} scales, got dim={dim}")
    return tuple(base + (1 if s < extra else 0) for s in range(num_scales))


class _DepthwiseConvCPU(torch.autograd.Function):
    """A "same" depthwise conv (stride 1, odd kernel, zero padding k // 2) with a fast backward on CPU.

    oneDNN's depthwise kernel computes weight gradients only for kernels at most 3 wide; for a
    wider one PyTorch's CPU backend falls back to oneDNN's generic grouped convolution, which pads
    each single-channel group to 16x16 channels: a 5x5 weight gradient over DeiT-T's 8x8 grid took
    about 18x the time of a 3x3 one, and was most of LIFE's extra training time on CPU. Here

    - the weight gradient is assembled from column strips at most 3 wide, each computed over the
      input padded (``F.pad``; negative padding crops) so that the strip's taps line up, with
      oneDNN's depthwise kernel;
    - the input gradient is the forward conv of the output gradient with the flipped kernel
      (true of any stride-1 "same" conv), which oneDNN runs faster than its backward-data pass
      for a 5x5 kernel.

    The forward pass is ``F.conv2d`` itself. ``benchmarks/life_layout.py`` times it.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, padding=padding, groups=x.shape[1])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = _depthwise_grad_input(grad, weight, ctx.padding) if ctx.needs_input_grad[0] else None
        grad_w = _depthwise_grad_weight_strips(grad, x, weight, ctx.padding) if ctx.needs_input_grad[1] else None
        return grad_x, grad_w, None


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(channels, channels, k, padding=k // 2, groups=channels, bias=False)``.

    The same module, parameters and function; only on CPU, when a gradient is needed for a kernel
    wider than 3, the backward pass goes around a slow oneDNN path (see ``_DepthwiseConvCPU``;
    ``benchmarks/life_layout.py`` measures it). ``torch.compile`` traces that backward too (without a
    graph break); ``torch.jit`` tracing and scripting (fvcore's MAC counts), ``torch.fx`` tracing,
    and every other device, take ``nn.Conv2d``'s own conv. timm's FX feature extraction keeps it a
    leaf module (``register_notrace_module``), so its graphs run this forward as it is.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(
                f"DepthwiseConv2d needs an odd kernel size (zero padding keeps the grid), got {kernel_size}"
            )
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():  # TorchScript compiles only the plain conv below
            if (
                not isinstance(x, torch.fx.Proxy)  # torch.fx traces the plain conv
                and self.kernel_size[1] > 3
                and x.device.type == "cpu"
                and x.dtype == self.weight.dtype
                and torch.is_grad_enabled()
                and (x.requires_grad or self.weight.requires_grad)
                and not torch.jit.is_tracing()
            ):
                return _DepthwiseConvCPU.apply(x, self.weight, self.padding)
        return self._conv_forward(x, self.weight, self.bias)


register_notrace_module(DepthwiseConv2d)


# --------------------------------------------------------------------------------------------
# LIFE's compute: one autograd function over a whole module


def _depthwise_grad_input(grad: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
    """Input gradient of a stride-1 "same" depthwise conv: the forward conv of ``grad`` with
    the flipped kernel."""
    return F.conv2d(grad, weight.flip((-2, -1)), padding=padding, groups=grad.shape[1])


def _depthwise_grad_weight_strips(
    grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int]
) -> torch.Tensor:
    """Weight gradient of a stride-1 "same" depthwise conv, in column strips at most 3 wide
    (each on oneDNN's fast depthwise path; see :class:`_DepthwiseConvCPU`)."""
    ph, pw = padding
    C, kw = x.shape[1], weight.shape[-1]
    strips, done = [], 0
    for start in sorted({min(t, kw - 3) for t in range(0, kw, 3)}):
        # taps start..start+2 of a kernel row read input columns (output column + tap - pw)
        left = pw - start
        g = torch.ops.aten.convolution_backward(
            grad, F.pad(x, (left, 2 - left)), weight[..., start:start + 3], None,
            (1, 1), (ph, 0), (1, 1), False, (0, 0), C, (False, True, False),
        )[1]
        strips.append(g[..., done - start:])  # the last strip may overlap the one before
        done = start + 3
    return torch.cat(strips, dim=-1)


def _depthwise_backward(
    grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int],
    need_input: bool, need_weight: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(input gradient, weight gradient) of ``F.conv2d(x, weight, padding=padding, groups=C)``
    (stride 1, "same"). On CPU the input gradient is the flipped kernel's forward conv (faster
    in oneDNN than its backward-data pass, 3x3 included), and kernels wider than 3 take their
    weight gradient in strips (:func:`_depthwise_grad_weight_strips`)."""
    if x.device.type != "cpu":
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad, x, weight, None, (1, 1), padding, (1, 1), False, (0, 0), x.shape[1],
            (need_input, need_weight, False),
        )
        return grad_x, grad_w
    grad_x = _depthwise_grad_input(grad, weight, padding) if need_input else None
    grad_w = None
    if need_weight and weight.shape[-1] > 3:
        grad_w = _depthwise_grad_weight_strips(grad, x, weight, padding)
    elif need_weight:
        grad_w = torch.ops.aten.convolution_backward(
            grad, x, weight, None, (1, 1), padding, (1, 1), False, (0, 0), x.shape[1], (False, True, False),
        )[1]
    return grad_x, grad_w


def _image(tokens: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """Patch tokens (B, gh*gw, C') as the channels-last image (B, C', gh, gw) they are (a view)."""
    return tokens.unflatten(1, (gh, gw)).permute(0, 3, 1, 2)


def _tokens(image: torch.Tensor) -> torch.Tensor:
    """A (channels-last) image (B, C', gh, gw) as tokens (B, gh*gw, C') (a view when channels-last)."""
    return image.permute(0, 2, 3, 1).flatten(1, 2)


def _matmul_t(a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ weight.T (+ bias)`` for a 2-d ``a``: ``F.linear`` without its reshapes."""
    return torch.mm(a, weight.t()) if bias is None else torch.addmm(bias, a, weight.t())


def _life_forward(
    x: torch.Tensor, P: int, gh: int, gw: int, paddings: tuple[tuple[int, int], ...],
    proj_w: torch.Tensor, proj_b: torch.Tensor | None, dw_ws: Sequence[torch.Tensor], pw_ws: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """LIFE's function in two token streams, each a dense (rows, C') matrix per scale: the
    patch stream (B*gh*gw rows, row-major grid order per image: a channels-last image the
    depthwise convs read and write without a copy) and the prefix stream (B*P rows, the
    pointwise path only). Each scale is one matmul per stream, copied once into its slots
    of the q|k|v layout. Returns (q|k|v as (B, N, 3C), the last depthwise conv's output as
    a (B*gh*gw, C') matrix)."""
    B, N, C = x.shape
    G = gh * gw
    out = x.new_empty(B, N, 3, C)
    if P and not torch.jit.is_tracing():  # patch tokens are strided rows of x: a batched matmul reads them
        w = proj_w.t().expand(B, C, proj_w.shape[0])  # in place (fvcore's trace counts addmm, not baddbmm)
        yp = (torch.bmm(x[:, P:], w) if proj_b is None else torch.baddbmm(proj_b, x[:, P:], w)).view(B * G, -1)
    else:
        yp = _matmul_t(x[:, P:].reshape(B * G, C), proj_w, proj_b)
    ya = _matmul_t(x[:, :P].reshape(B * P, C), proj_w, proj_b) if P else None
    conv = None
    offset = 0
    for s in range(len(pw_ws) + 1):
        if s:
            image = _image(yp.view(B, G, -1), gh, gw)
            conv = F.conv2d(image, dw_ws[s - 1], padding=paddings[s - 1], groups=image.shape[1])
            conv = _tokens(conv).reshape(B * G, -1)
            yp = _matmul_t(conv, pw_ws[s - 1])
            ya = _matmul_t(ya, pw_ws[s - 1]) if P else None
        # [q_s | k_s | v_s] -> scale s's slots of [q_1 q_2 q_3 | k_1 k_2 k_3 | v_1 v_2 v_3]
        width = yp.shape[1] // 3
        out[:, P:, :, offset:offset + width].copy_(yp.view(B, G, 3, width))
        if P:
            out[:, :P, :, offset:offset + width].copy_(ya.view(B, P, 3, width))
        offset += width
    return out.view(B, N, 3 * C), conv


class _LIFEFunction(torch.autograd.Function):
    """:func:`_life_forward` with a hand-written backward pass.

    It saves its input (as a plain ``qkv`` Linear does), its output (what attention saves
    anyway: q, k and v are views of it) and the last depthwise conv's output (the 5x5's by
    default: about 6 % of a DeiT block's activations); the other convs' outputs are
    recomputed from their inputs, which are slices of the output. The backward pass then runs
    the cascade backwards: per scale a weight-gradient and an input-gradient matmul per
    stream and one depthwise backward pass (:func:`_depthwise_backward`); scale 1's gradient
    is assembled in token order, so the input gradient needs no concatenation.
    """

    @staticmethod
    def forward(ctx, x, P, gh, gw, paddings, proj_w, proj_b, *weights):
        S = len(weights) // 2 + 1
        out, last_conv = _life_forward(x, P, gh, gw, paddings, proj_w, proj_b, weights[:S - 1], weights[S - 1:])
        ctx.save_for_backward(x, out, last_conv, proj_w, *weights)
        ctx.geometry = (x.shape, P, gh, gw, paddings, proj_b is not None)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, out, last_conv, proj_w, *weights = ctx.saved_tensors
        (B, N, C), P, gh, gw, paddings, has_bias = ctx.geometry
        G, S = gh * gw, len(weights) // 2 + 1
        dw_ws, pw_ws = weights[:S - 1], weights[S - 1:]
        need = ctx.needs_input_grad
        need_dw, need_pw = need[7:7 + S - 1], need[7 + S - 1:]
        widths = [w.shape[0] // 3 for w in (proj_w, *pw_ws)]  # channels of each of q, k, v per scale
        offsets = [sum(widths[:s]) for s in range(S + 1)]
        # each scale's part of the gradient, per stream, as a (rows, 3 C_s) matrix
        grad = grad.reshape(B, N, 3, C)
        if len(set(widths)) == 1:  # one copy per stream for every scale
            grad = grad.view(B, N, 3, S, widths[0]).transpose(2, 3)
            grads_p = grad[:, P:].reshape(B * G, S, 3 * widths[0]).unbind(1)
            grads_a = grad[:, :P].reshape(B * P, S, 3 * widths[0]).unbind(1)
        else:
            grads_p = [grad[:, P:, :, offsets[s]:offsets[s + 1]].reshape(B * G, 3 * widths[s]) for s in range(S)]
            grads_a = [grad[:, :P, :, offsets[s]:offsets[s + 1]].reshape(B * P, 3 * widths[s]) for s in range(S)]
        ys = out.view(B, N, 3, C)
        grad_dw, grad_pw = [None] * (S - 1), [None] * (S - 1)
        dyp, dya = grads_p[-1], grads_a[-1]
        for s in range(S - 1, 0, -1):  # scale s = pw(dw(scale s - 1))
            weight, padding, pw_w = dw_ws[s - 1], paddings[s - 1], pw_ws[s - 1]
            y = ys[..., offsets[s - 1]:offsets[s]]
            image = _image(y[:, P:].reshape(B, G, -1), gh, gw)  # the conv's input, recomputed
            if need_pw[s - 1]:
                conv = last_conv if s == S - 1 else _tokens(
                    F.conv2d(image, weight, padding=padding, groups=image.shape[1])
                ).reshape(B * G, -1)
                grad_pw[s - 1] = dyp.t().mm(conv)
                if P:
                    grad_pw[s - 1].addmm_(dya.t(), y[:, :P].reshape(B * P, 3 * widths[s - 1]))
            grad_image, grad_dw[s - 1] = _depthwise_backward(
                _image(dyp.mm(pw_w).view(B, G, -1), gh, gw), image, weight, padding, True, need_dw[s - 1],
            )
            if s > 1:
                dyp = _tokens(grad_image).reshape(B * G, -1).add_(grads_p[s - 1])
                if P:
                    dya = dya.mm(pw_w).add_(grads_a[s - 1])
            else:  # scale 1's gradient in token order, as x is
                dy = grad_image.new_empty(B, N, 3 * widths[0])
                dy[:, P:].copy_(_tokens(grad_image)).add_(grads_p[0].view(B, G, -1))
                if P:
                    dy[:, :P].copy_(torch.addmm(grads_a[0], dya, pw_w).view(B, P, -1))
        if S == 1:
            dy = grad.reshape(B, N, 3 * C)
        dy = dy.view(B * N, -1)
        grad_x = dy.mm(proj_w).view(B, N, C) if need[0] else None
        grad_proj_w = dy.t().mm(x.reshape(B * N, C)) if need[5] else None
        grad_proj_b = dy.sum(0) if need[6] and has_bias else None
        return (grad_x, None, None, None, None, grad_proj_w, grad_proj_b, *grad_dw, *grad_pw)


# --------------------------------------------------------------------------------------------
# Small grids: each depthwise conv as one matrix per channel over the tokens

# Training on a grid of at most this many cells takes the grid-matrix path. Measured (one CPU
# thread, DeiT-micro's LIFE, C=96, forward + backward): 4x4 grid 1.52 ms against the conv path's
# 2.37 (batch 16) and 5.34 against 6.61 (batch 64); from 5x5 up the conv path is as fast or
# faster (6x6: 3.43 against 2.85; 8x8: 8.57 against 5.26), since the matrices grow as cells².
GRID_MATRIX_MAX_CELLS = 16
# Inference (no gradient) takes it too while the batch has at most this many tokens (B * N).
# Measured (one CPU thread, C=96, 4x4 grid and a class token, forward only, median of 15
# interleaved rounds): grid / conv path time 0.72, 0.82, 0.86, 0.62 at batch 16, 32, 64, 128
# (272 to 2176 tokens), 1.26 at batch 256 (4352 tokens, its buffers out of cache).
GRID_MATRIX_MAX_INFERENCE_TOKENS = 2304


@functools.lru_cache(maxsize=64)
def _grid_taps(
    gh: int, gw: int, P: int, k: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a "same" ``k x k`` depthwise conv over a ``gh x gw`` grid reads: ``(taps, prefix)``.

    ``taps`` is the (N*N, k*k) 0/1 matrix (N = P + gh*gw tokens, prefix tokens first) with
    ``taps[q * N + p, t] = 1`` where token ``q`` is tap ``t`` of token ``p``'s window (F.conv2d's
    cross-correlation, zero padding); ``prefix`` is the (1, N*N) row with a 1 at ``(q, q)`` for
    each prefix token, which passes through unchanged (it has no neighbours). For a kernel ``w``
    (C', k*k), ``prefix + w @ taps.T`` is the conv as a (C', N, N) matrix per channel."""
    N, r = P + gh * gw, k // 2
    i, j = torch.arange(gh).view(gh, 1, 1, 1), torch.arange(gw).view(1, gw, 1, 1)  # token p = (i, j)
    dy, dx = torch.arange(k).view(1, 1, k, 1), torch.arange(k).view(1, 1, 1, k)  # tap t = (dy, dx)
    qi, qj = i + dy - r, j + dx - r
    inside = (qi >= 0) & (qi < gh) & (qj >= 0) & (qj < gw)
    q = torch.where(inside, P + qi * gw + qj, -1).view(gh * gw, k * k)  # -1: the zero padding
    reads = q.unsqueeze(0) == torch.arange(N).view(N, 1, 1)  # (q, patch p, t); no data-dependent shapes
    taps = torch.cat([torch.zeros(N, P, k * k, dtype=torch.bool), reads], dim=1).to(dtype).view(N * N, k * k)
    flat = torch.arange(N * N)
    prefix = (flat % (N + 1) == 0) & (flat < P * (N + 1))  # entries (q, q) of the prefix tokens
    return taps.to(device), prefix.to(device, dtype).view(1, N * N)


def _grid_matrix(weight: torch.Tensor, gh: int, gw: int, P: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A depthwise conv (weight (C', 1, k, k)) over the tokens as (C', N, N) matrices ``T``, with
    ``conv(y)[c, b, p] = sum_q y[c, b, q] T[c, q, p]``; also returns its ``taps`` (:func:`_grid_taps`)."""
    C, k = weight.shape[0], weight.shape[-1]
    build = _grid_taps.__wrapped__ if torch.compiler.is_compiling() else _grid_taps  # a trace builds its own
    taps, prefix = build(gh, gw, P, k, weight.device, weight.dtype)
    N = P + gh * gw
    return torch.addmm(prefix, weight.reshape(C, k * k), taps.t()).view(C, N, N), taps


def _scales_channels_first(t: torch.Tensor, widths: Sequence[int]) -> list[torch.Tensor]:
    """The slots of q, k and v of the first ``len(widths)`` scales of a (B, N, 3, C) tensor, each
    as a (3 C_s, B, N) tensor (a copy: one for all of them when they are equally wide)."""
    B, N, S = t.shape[0], t.shape[1], len(widths)
    if len(set(widths)) == 1:
        t = t[..., :S * widths[0]].unflatten(-1, (S, widths[0]))
        return list(t.permute(3, 2, 4, 0, 1).reshape(S, -1, B, N).unbind(0))
    offsets = [sum(widths[:s]) for s in range(S)]
    return [t[..., o:o + w].permute(2, 3, 0, 1).reshape(3 * w, B, N) for o, w in zip(offsets, widths)]


def _grid_scales(
    x: torch.Tensor, P: int, gh: int, gw: int, proj_w: torch.Tensor, proj_b: torch.Tensor | None,
    dw_ws: Sequence[torch.Tensor], pw_ws: Sequence[torch.Tensor], ys: Sequence[torch.Tensor],
) -> torch.Tensor | None:
    """LIFE's scales on a small grid, every token in one stream, written into ``ys`` (one
    channels-first (3 C_s, B*N) matrix per scale; its rows may be strided): each depthwise
    conv one batched matmul over channels by its (N, N) matrix (:func:`_grid_matrix`; prefix
    tokens pass through it unchanged), each pointwise conv one matmul. Returns the last
    conv's output as (C', B, N)."""
    B, N, C = x.shape
    xm = x.reshape(B * N, C).t()
    if proj_b is None:
        torch.mm(proj_w, xm, out=ys[0])
    else:
        torch.addmm(proj_b[:, None], proj_w, xm, out=ys[0])
    conv = None
    for s in range(1, len(ys)):
        conv = torch.bmm(ys[s - 1].view(-1, B, N), _grid_matrix(dw_ws[s - 1], gh, gw, P)[0])
        torch.mm(pw_ws[s - 1], conv.view(-1, B * N), out=ys[s])
    return conv


def _grid_scales_backward(
    x: torch.Tensor, P: int, gh: int, gw: int, proj_w: torch.Tensor, dw_ws: Sequence[torch.Tensor],
    pw_ws: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], last_conv: torch.Tensor | None,
    grads: Sequence[torch.Tensor], need: Sequence[bool],
) -> tuple:
    """:func:`_grid_scales` backwards: from the scales' gradients ``grads`` and the conv
    inputs ``ys`` (the first S-1 scales), each channels-first (3 C_s, B*N) or (3 C_s, B, N),
    the cascade run backwards, rebuilding the conv matrices and the conv outputs other than
    ``last_conv``. ``need`` says which of (x, proj weight, proj bias, depthwise weights...,
    pointwise weights...) need a gradient; returns those gradients in that order."""
    B, N, C = x.shape
    S = len(grads)
    need_dw, need_pw = need[3:3 + S - 1], need[3 + S - 1:]
    grad_dw, grad_pw = [None] * (S - 1), [None] * (S - 1)
    dy = grads[-1].view(-1, B * N)
    for s in range(S - 1, 0, -1):  # scale s = pw(dw(scale s - 1))
        y = ys[s - 1].view(-1, B, N)  # the conv's input
        matrix, taps = _grid_matrix(dw_ws[s - 1], gh, gw, P)
        if need_pw[s - 1]:
            conv = last_conv if s == S - 1 else torch.bmm(y, matrix)
            grad_pw[s - 1] = dy.mm(conv.view(-1, B * N).t())
        dconv = pw_ws[s - 1].t().mm(dy).view(-1, B, N)
        if need_dw[s - 1]:
            k = dw_ws[s - 1].shape[-1]
            grad_dw[s - 1] = torch.bmm(y.transpose(1, 2), dconv).view(-1, N * N).mm(taps).view(-1, 1, k, k)
        g = grads[s - 1].view(-1, B, N)
        # baddbmm reads a strided g slowly (the one-pass layout): there, bmm and an add
        dy = (torch.baddbmm(g, dconv, matrix.transpose(1, 2)) if g.is_contiguous()
              else torch.bmm(dconv, matrix.transpose(1, 2)).add_(g)).view(-1, B * N)
    grad_x = dy.t().mm(proj_w).view(B, N, C) if need[0] else None
    grad_proj_w = dy.mm(x.reshape(B * N, C)) if need[1] else None
    grad_proj_b = dy.sum(1) if need[2] else None
    return (grad_x, grad_proj_w, grad_proj_b, *grad_dw, *grad_pw)


def _life_forward_grid(
    x: torch.Tensor, P: int, gh: int, gw: int,
    proj_w: torch.Tensor, proj_b: torch.Tensor | None, dw_ws: Sequence[torch.Tensor], pw_ws: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`_life_forward` for a small grid, with every token in one stream: each scale is a
    channels-first (3 C_s, B*N) matrix, each depthwise conv one batched matmul over channels by
    its (N, N) matrix (:func:`_grid_matrix`; prefix tokens pass through it unchanged), each
    pointwise conv one matmul; the scales are copied into the q|k|v layout at the end (one
    copy when they are equally wide). Returns (q|k|v as (B, N, 3C), the last conv's output as
    (C', B, N))."""
    B, N, C = x.shape
    widths = [w.shape[0] // 3 for w in (proj_w, *pw_ws)]
    S, equal = len(widths), len(set(widths)) == 1
    buf = x.new_empty(S, 3 * widths[0], B * N) if equal else None
    ys = [buf[s] if equal else x.new_empty(3 * widths[s], B * N) for s in range(S)]
    conv = _grid_scales(x, P, gh, gw, proj_w, proj_b, dw_ws, pw_ws, ys)
    if equal:  # (S, 3, C_s, B, N) -> (B, N, 3, S, C_s)
        return buf.view(S, 3, widths[0], B, N).permute(3, 4, 1, 0, 2).reshape(B, N, 3 * C), conv
    out = x.new_empty(B, N, 3, C)
    offset = 0
    for y, width in zip(ys, widths):
        out[..., offset:offset + width].copy_(y.view(3, width, B, N).permute(2, 3, 0, 1))
        offset += width
    return out.view(B, N, 3 * C), conv


class _LIFEGridFunction(torch.autograd.Function):
    """:func:`_life_forward_grid` with a hand-written backward pass; it saves what
    :class:`_LIFEFunction` saves (input, output, last conv's output) and rebuilds the conv
    matrices and the other conv's outputs."""

    @staticmethod
    def forward(ctx, x, P, gh, gw, proj_w, proj_b, *weights):
        S = len(weights) // 2 + 1
        out, last_conv = _life_forward_grid(x, P, gh, gw, proj_w, proj_b, weights[:S - 1], weights[S - 1:])
        ctx.save_for_backward(x, out, last_conv, proj_w, *weights)
        ctx.geometry = (P, gh, gw, proj_b is not None)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, out, last_conv, proj_w, *weights = ctx.saved_tensors
        P, gh, gw, has_bias = ctx.geometry
        B, N, C = x.shape
        S = len(weights) // 2 + 1
        dw_ws, pw_ws = weights[:S - 1], weights[S - 1:]
        need = ctx.needs_input_grad
        widths = [w.shape[0] // 3 for w in (proj_w, *pw_ws)]
        grads = _scales_channels_first(grad.reshape(B, N, 3, C), widths)
        ys = _scales_channels_first(out.view(B, N, 3, C), widths[:-1]) if S > 1 else []
        grad_x, grad_proj_w, grad_proj_b, *grad_weights = _grid_scales_backward(
            x, P, gh, gw, proj_w, dw_ws, pw_ws, ys, last_conv, grads,
            (need[0], need[4], need[5] and has_bias, *need[6:]))
        return (grad_x, None, None, None, grad_proj_w, grad_proj_b, *grad_weights)


def _needs_grad(x: torch.Tensor, params: Sequence[torch.Tensor | None]) -> bool:
    """Whether autograd will need LIFE's backward pass for ``x`` and ``params``."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, *params))


def _grid_matrix_mode(x: torch.Tensor, gh: int, gw: int, params: Sequence[torch.Tensor | None]) -> str | None:
    """Where the grid-matrix path applies: ``"train"`` (a gradient is needed) on grids of at
    most ``GRID_MATRIX_MAX_CELLS`` cells, ``"infer"`` on such grids while the batch has at
    most ``GRID_MATRIX_MAX_INFERENCE_TOKENS`` tokens; else None (a symbolic grid too)."""
    if type(gh) is not int or type(gw) is not int or gh * gw > GRID_MATRIX_MAX_CELLS:
        return None
    if _needs_grad(x, params):
        return "train"
    return "infer" if x.shape[0] * x.shape[1] <= GRID_MATRIX_MAX_INFERENCE_TOKENS else None


def _life_qkv(
    x: torch.Tensor, P: int, gh: int, gw: int, paddings: tuple[tuple[int, int], ...], params: list
) -> torch.Tensor:
    """LIFE's q|k|v from ``params`` = (proj weight, proj bias, depthwise weights..., pointwise
    weights...): when a gradient is needed, :class:`_LIFEGridFunction` on grids of at most
    ``GRID_MATRIX_MAX_CELLS`` cells and :class:`_LIFEFunction` on larger ones; else (an
    inference pass) :func:`_life_forward_grid` on such small grids while the batch has at most
    ``GRID_MATRIX_MAX_INFERENCE_TOKENS`` tokens, :func:`_life_forward`'s plain torch ops
    otherwise and in a ``torch.jit`` trace (which fvcore's MAC count reads)."""
    traced = torch.jit.is_tracing() or torch.jit.is_scripting()
    mode = None if traced else _grid_matrix_mode(x, gh, gw, params)
    if mode == "train":
        return _LIFEGridFunction.apply(x, P, gh, gw, *params)
    if not traced and _needs_grad(x, params):
        return _LIFEFunction.apply(x, P, gh, gw, paddings, *params)
    S = len(params) // 2
    dw_ws, pw_ws = params[2:1 + S], params[1 + S:]
    if mode == "infer":
        return _life_forward_grid(x, P, gh, gw, params[0], params[1], dw_ws, pw_ws)[0]
    return _life_forward(x, P, gh, gw, paddings, params[0], params[1], dw_ws, pw_ws)[0]


# --------------------------------------------------------------------------------------------
# Small grids: LIFE and the attention that reads it, in one pass

def _life_attention_grid(
    x: torch.Tensor, P: int, gh: int, gw: int, scale: float, proj_w: torch.Tensor, proj_b: torch.Tensor | None,
    dw_ws: Sequence[torch.Tensor], pw_ws: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """LIFE's q|k|v (:func:`_life_forward_grid`'s channels-first scales) and the softmax
    attention over them, one head per scale, without laying q|k|v out as (B, N, 3C).

    The scales are written into one (3, D, S, B, N) buffer (q|k|v, channel, scale = head,
    image, token): each scale's pointwise conv writes its (3D, B*N) rows in place (a strided
    matmul output, as fast as a contiguous one), and the heads' q, k and v are (S*B, N, D)
    views of it, which the batched matmuls read as they are (PyTorch's CPU ``bmm`` is slow
    into strided outputs, so those get fresh ones). Returns (the heads' outputs as (B, N, C),
    the buffer, the last conv's output, the attention weights as (S*B, N, N))."""
    B, N, C = x.shape
    S = len(pw_ws) + 1
    D = C // S
    buf = x.new_empty(3, D, S, B, N)
    ys = buf.view(3 * D, S, B * N).unbind(1)  # scale s's (3D, B*N) rows
    conv = _grid_scales(x, P, gh, gw, proj_w, proj_b, dw_ws, pw_ws, ys)
    q, k, v = buf.view(3, D, S * B, N).permute(0, 2, 3, 1).unbind(0)  # (S*B, N, D) each
    attn = torch.bmm(q, k.transpose(1, 2)).mul_(scale).softmax(-1)
    out = torch.bmm(attn, v).view(S, B, N, D).permute(1, 2, 0, 3).reshape(B, N, C)
    return out, buf, conv, attn


class _LIFEAttentionGridFunction(torch.autograd.Function):
    """:func:`_life_attention_grid` with a hand-written backward pass: the softmax attention's
    (dq, dk, dv) for all heads at once, stacked into the buffer's channels-first layout by one
    copy, then LIFE's cascade as in :class:`_LIFEGridFunction`. It saves the input, the buffer
    (q, k and v), the last conv's output and the attention weights."""

    @staticmethod
    def forward(ctx, x, P, gh, gw, scale, proj_w, proj_b, *weights):
        S = len(weights) // 2 + 1
        out, buf, conv, attn = _life_attention_grid(
            x, P, gh, gw, scale, proj_w, proj_b, weights[:S - 1], weights[S - 1:])
        ctx.save_for_backward(x, buf, conv, attn, proj_w, *weights)
        ctx.geometry = (P, gh, gw, scale, proj_b is not None)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        P, gh, gw, scale, has_bias = ctx.geometry
        x, buf, last_conv, attn, proj_w, *weights = ctx.saved_tensors
        B, N, C = x.shape
        S = len(weights) // 2 + 1
        D = C // S
        dw_ws, pw_ws = weights[:S - 1], weights[S - 1:]
        need = ctx.needs_input_grad
        q, k, v = buf.view(3, D, S * B, N).permute(0, 2, 3, 1).unbind(0)
        dout = grad.reshape(B, N, S, D).permute(2, 0, 1, 3).reshape(S * B, N, D)
        dv = torch.bmm(attn.transpose(1, 2), dout)
        dlogits = torch._softmax_backward_data(torch.bmm(dout, v.transpose(1, 2)), attn, -1, attn.dtype).mul_(scale)
        parts = (torch.bmm(dlogits, k), torch.bmm(dlogits.transpose(1, 2), q), dv)
        grads = torch.stack([t.permute(2, 0, 1) for t in parts]).view(3 * D, S, B * N).unbind(1)
        ys = buf.view(3 * D, S, B * N).unbind(1)
        grad_x, grad_proj_w, grad_proj_b, *grad_weights = _grid_scales_backward(
            x, P, gh, gw, proj_w, dw_ws, pw_ws, ys, last_conv, grads,
            (need[0], need[5], need[6] and has_bias, *need[7:]))
        return (grad_x, None, None, None, None, grad_proj_w, grad_proj_b, *grad_weights)


class QKVFeatures:
    """``in_features`` / ``out_features`` of a module that stands in for ``attn.qkv`` (a
    ``Linear(dim, 3 * dim)``): timm code, and ours, reads them from ``attn.qkv``."""

    dim: int

    @property
    def in_features(self) -> int:
        return self.dim

    @property
    def out_features(self) -> int:
        return 3 * self.dim


class LIFE(QKVFeatures, nn.Module):
    """Multi-scale local q/k/v projection, a drop-in for timm ``Attention.qkv``.

    Args:
        dim: token channels C (input); the output has 3C channels.
        num_prefix_tokens: leading tokens without a grid position (class, distillation,
            register tokens); they take the pointwise path only.
        kernel_sizes: depthwise kernel of each cascaded scale after the first (paper: 3 then 5).
        bias: bias on the scale-1 projection (the paper's and official code's only bias).
        qkv_norm: LayerNorm over each of q, k and v (one shared LayerNorm(C), as the official
            ``norm`` option); off by default, as in the paper.
        grid_size: a fixed patch grid ``(gh, gw)``; usually left None and set per call.
    """

    # attribute types for TorchScript
    grid_size: tuple[int, int] | None
    _grid_cell: torch.Tensor | None

    def __init__(
        self,
        dim: int,
        num_prefix_tokens: int = 1,
        kernel_sizes: Sequence[int] = (3, 5),
        bias: bool = True,
        qkv_norm: bool = False,
        grid_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ConfigError(
                f"LIFE kernel_sizes must be odd and positive (zero padding keeps the grid), got {kernel_sizes}"
            )
        if num_prefix_tokens < 0:
            raise ConfigError(f"num_prefix_tokens must be >= 0, got {num_prefix_tokens}")
        self.dim = dim
        self.num_prefix_tokens = int(num_prefix_tokens)
        self.kernel_sizes = kernel_sizes
        self.scale_dims = split_channels(dim, len(kernel_sizes) + 1)
        self.grid_size = (int(grid_size[0]), int(grid_size[1])) if grid_size is not None else None
        self._grid_cell = None  # the grid under TorchScript, shared with a patch embedding (apply_life)
        widths = [3 * c for c in self.scale_dims]  # each scale emits [q_s | k_s | v_s]
        self.proj = nn.Linear(dim, widths[0], bias=bias)
        self.dw = nn.ModuleList(DepthwiseConv2d(c_in, k) for c_in, k in zip(widths[:-1], kernel_sizes))
        self.pw = nn.ModuleList(nn.Linear(c_in, c_out, bias=False) for c_in, c_out in zip(widths[:-1], widths[1:]))
        self.norm = nn.LayerNorm(dim) if qkv_norm else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Scale 1 as timm inits ``qkv`` (trunc-normal std .02, zero bias); the depthwise and
        pointwise convs keep PyTorch's default conv init, as in the official code."""
        nn.init.trunc_normal_(self.proj.weight, std=0.02)
        if self.proj.bias is not None:
            nn.init.zeros_(self.proj.bias)
        for m in [*self.dw, *self.pw]:
            m.reset_parameters()

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_prefix_tokens={self.num_prefix_tokens}, "
            f"kernel_sizes={self.kernel_sizes}, scale_dims={self.scale_dims}"
        )

    def _grid(self, N: int, grid_size: tuple[int, int] | None) -> tuple[int, int]:
        """The patch grid of this call: ``grid_size`` if given, else the grid recorded for this
        input by the model's patch embedding (:func:`apply_life`) or set with :func:`set_grid_size`.

        Under ``torch.fx`` / ``torch.export`` the recorded grid may be a value of the graph being
        traced (a dynamic input size); it is used once and forgotten, so it cannot outlive its
        trace. Under ``torch.jit.script`` the patch embedding's hook writes the grid into a small
        tensor this module shares (``_grid_cell``), since a scripted hook cannot reach other modules.
        """
        grid = grid_size
        if grid is None:
            if torch.jit.is_scripting():
                cell = self._grid_cell
                if cell is not None and int(cell[0]) > 0:
                    grid = (int(cell[0]), int(cell[1]))
            if grid is None:
                grid = self.grid_size
                if not torch.jit.is_scripting():
                    if grid is not None and not isinstance(grid[0], int):
                        self.grid_size = None  # a traced graph's value: good for this trace only
        if grid is None:
            raise ConfigError(
                f"LIFE does not know the patch grid of its {N} tokens: convert the model with "
                "lifestudy.apply_life (it records the grid on every call), call "
                "lifestudy.life.set_grid_size(module, (gh, gw)), or pass grid_size=(gh, gw)"
            )
        gh, gw = grid[0], grid[1]
        P = self.num_prefix_tokens
        if not torch.jit.is_scripting():
            if isinstance(N, torch.fx.Proxy):  # symbolic tracing: the check becomes part of the graph
                torch._assert(gh * gw + P == N, "LIFE: the patch grid and the number of tokens disagree")
                return gh, gw
        if gh * gw + P != N:
            raise ConfigError(
                f"LIFE got {N} tokens but grid {gh}x{gw} plus {P} prefix "
                f"tokens makes {gh * gw + P}: set the grid of this input "
                "with set_grid_size(module, (gh, gw)) or pass grid_size"
            )
        return gh, gw

    def forward(self, x: torch.Tensor, grid_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Tokens (B, N, C) -> q|k|v (B, N, 3C).

        Args:
            x: prefix tokens first, then the patch tokens in row-major grid order.
            grid_size: the patch grid (gh, gw); None uses the grid recorded on the module.
        """
        B, N, C = x.shape
        gh, gw = self._grid(N, grid_size)
        # TorchScript and torch.fx see the modules' own ops, not the autograd function.
        if torch.jit.is_scripting():
            return self._reference(x, gh, gw)
        if not torch.jit.is_scripting():
            if isinstance(x, torch.fx.Proxy):
                return self._reference(x, gh, gw)
        qkv = self._qkv(x, gh, gw)
        if isinstance(self.norm, nn.Identity):
            return qkv
        return self.norm(qkv.view(B, N, 3, C)).view(B, N, 3 * C)

    @torch.jit.unused
    def _qkv(self, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        """q|k|v before ``norm`` (:func:`_life_qkv`)."""
        params = self._weights()
        paddings = tuple(m.padding for m in self.dw)
        device = x.device.type
        if torch.is_autocast_enabled(device):  # autocast would cast every op's inputs: cast them once
            dtype = torch.get_autocast_dtype(device)
            params = [p if p is None else p.to(dtype) for p in params]
            with torch.autocast(device, enabled=False):
                return _life_qkv(x.to(dtype), self.num_prefix_tokens, gh, gw, paddings, params)
        return _life_qkv(x, self.num_prefix_tokens, gh, gw, paddings, params)

    @torch.jit.unused
    def _weights(self) -> list:
        """(proj weight, proj bias, depthwise weights..., pointwise weights...), as the
        functions above take them."""
        return [self.proj.weight, self.proj.bias, *(m.weight for m in self.dw), *(m.weight for m in self.pw)]

    def forward_reference(self, x: torch.Tensor, grid_size: tuple[int, int] | None = None) -> torch.Tensor:
        """:meth:`forward` as it was computed before :class:`_LIFEFunction`: the same function
        from the modules' own forward passes, two token streams and autograd's backward pass.
        Kept as the reference the tests and ``benchmarks/life_layout.py`` compare against,
        and what a TorchScript copy of the module runs."""
        B, N, C = x.shape
        gh, gw = self._grid(N, grid_size)
        return self._reference(x, gh, gw)

    def _reference(self, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        """:meth:`forward_reference` for a known grid."""
        B, N, C = x.shape
        P = self.num_prefix_tokens
        prefix, patches = x[:, :P], x[:, P:]
        # Patch stream: each scale's output is a contiguous (B, gh*gw, C') tensor, which *is*
        # a channels-last (B, C', gh, gw) image: the depthwise convs read and write it
        # without a copy, and the pointwise convs are plain matmuls over the tokens.
        y = self.proj(patches)
        scales = [y]
        for dw, pw in zip(self.dw, self.pw):
            image = y.view(B, gh, gw, -1).permute(0, 3, 1, 2)
            y = pw(dw(image).permute(0, 2, 3, 1).reshape(B, gh * gw, -1))
            scales.append(y)
        # [q_s | k_s | v_s] per scale -> [q_1 q_2 q_3 | k_1 k_2 k_3 | v_1 v_2 v_3]
        qkv = torch.cat([s.view(B, N - P, 3, -1) for s in scales], dim=-1)
        if P:  # prefix stream: the pointwise path of every scale, nothing spatial
            a = self.proj(prefix)
            scales = [a]
            for pointwise in self.pw:  # (TorchScript: a module loop variable takes a fresh name)
                a = pointwise(a)
                scales.append(a)
            qkv = torch.cat([torch.cat([s.view(B, P, 3, -1) for s in scales], dim=-1), qkv], dim=1)
        return self.norm(qkv).view(B, N, 3 * C)


def _one_pass_mode(attn: nn.Module, x: torch.Tensor, args: tuple, kwargs: dict, params: list) -> str | None:
    """How :class:`LIFEAttention` may run LIFE and the attention as one pass
    (:func:`_life_attention_grid`): ``"train"`` (with its autograd function), ``"infer"``, or
    None (timm's forward). One pass needs eager CPU code (no trace, script, compile or
    autocast), no attention mask, plain softmax attention (no q/k norm, gate, attention
    dropout or hook that would see the attention's parts), one head per LIFE scale and a
    grid of at most ``GRID_MATRIX_MAX_CELLS`` cells; inference also a batch of at most
    ``GRID_MATRIX_MAX_INFERENCE_TOKENS`` tokens (:func:`_grid_matrix_mode`, as :func:`_life_qkv`)."""
    life = attn.qkv
    if (isinstance(x, torch.fx.Proxy) or x.device.type != "cpu" or x.dim() != 3 or torch.jit.is_tracing()
            or torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu")
            or any(a is not None and a is not False for a in (*args, *kwargs.values()))):
        return None
    grid = life.grid_size
    if grid is None:
        return None
    dims = life.scale_dims
    if (attn.num_heads != len(dims) or attn.head_dim != dims[0] or min(dims) != dims[0]
            or getattr(attn, "gate", None) is not None or (attn.training and attn.attn_drop.p > 0)
            or not all(type(m) is nn.Identity
                       for m in (life.norm, attn.q_norm, attn.k_norm, getattr(attn, "norm", life.norm)))
            or life._forward_hooks or life._forward_pre_hooks or attn.attn_drop._forward_hooks
            or attn.attn_drop._forward_pre_hooks or nn.modules.module._global_forward_hooks
            or nn.modules.module._global_forward_pre_hooks):
        return None
    return _grid_matrix_mode(x, grid[0], grid[1], params)


class LIFEAttention(Attention):
    """timm's ViT ``Attention`` with LIFE as its ``qkv``: what :func:`apply_life` makes of each
    block's attention. The same module (parameters, state dict, ``attn.qkv``); where
    :func:`_one_pass_mode` allows it (the cpu profile's small grids) LIFE and the attention
    run as one pass, :class:`_LIFEAttentionGridFunction`, which reads q, k and v where LIFE
    writes them instead of copying them into timm's q|k|v layout and back. The function is
    the same; everywhere else, and in a TorchScript copy (``__prepare_scriptable__``), timm's
    own forward runs."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        life = self.qkv
        params = life._weights() if isinstance(life, LIFE) else []
        mode = _one_pass_mode(self, x, args, kwargs, params) if params else None
        if mode is None:
            return super().forward(x, *args, **kwargs)
        gh, gw = life._grid(x.shape[1], None)
        P = life.num_prefix_tokens
        if mode == "train":
            out = _LIFEAttentionGridFunction.apply(x, P, gh, gw, self.scale, *params)
        else:
            S = len(params) // 2
            out = _life_attention_grid(
                x, P, gh, gw, self.scale, params[0], params[1], params[2:1 + S], params[1 + S:])[0]
        return self.proj_drop(self.proj(out))

    def __prepare_scriptable__(self) -> nn.Module:
        """TorchScript compiles timm's ``Attention`` (a copy sharing this module's parameters).
        ``torch.jit.script`` puts what this returns in place of the module in its parent, so
        after scripting the eager model runs timm's forward too: the same function, without
        the one pass (a model built anew has it)."""
        plain = copy.copy(self)
        plain.__class__ = Attention
        return plain


# --------------------------------------------------------------------------------------------
# Grid bookkeeping


def life_modules(module: nn.Module) -> list[LIFE]:
    """Every LIFE inside ``module`` (itself included), in module order."""
    return [m for m in module.modules() if isinstance(m, LIFE)]


def set_grid_size(module: nn.Module, grid_size: tuple[int, int]) -> nn.Module:
    """Set the patch grid ``(gh, gw)`` of every LIFE inside ``module`` (e.g. a dense head that
    runs LIFE over a feature grid); returns ``module``."""
    grid = (int(grid_size[0]), int(grid_size[1]))
    for m in life_modules(module):
        m.grid_size = grid
    return module


def patch_grid(patch_embed: nn.Module, img_size: tuple[int, int]) -> tuple[int, int]:
    """The patch grid ``(gh, gw)`` that a ViT's ``patch_embed`` makes of an ``H x W`` image.

    timm's ``dynamic_img_pad`` (a partial patch is padded) and an embedding's own
    ``dynamic_feat_size`` (timm's ``PatchEmbed``, a T2T embedding) are followed. Integer
    arithmetic on ``H`` and ``W`` only, so the sizes may be symbolic (``torch.fx``,
    ``torch.export``, ``torch.compile``) and the grid is then a value of the traced graph.
    """
    H, W = img_size
    if getattr(patch_embed, "dynamic_img_pad", False):
        ph, pw = patch_embed.patch_size
        return (H + ph - 1) // ph, (W + pw - 1) // pw
    if hasattr(patch_embed, "dynamic_feat_size"):
        gh, gw = patch_embed.dynamic_feat_size((H, W))
        return gh, gw
    if hasattr(patch_embed, "patch_size"):
        p = patch_embed.patch_size
        ph, pw = p if isinstance(p, (tuple, list)) else (p, p)
        return H // ph, W // pw
    gh, gw = patch_embed.grid_size
    return gh, gw


def _input_grid(patch_embed: nn.Module, image: torch.Tensor) -> tuple[int, int]:
    """The grid of this input: the configured one when the embedding takes only its own
    ``img_size`` (a constant, also in traced graphs), else :func:`patch_grid` of the image."""
    if getattr(patch_embed, "strict_img_size", False) and getattr(patch_embed, "grid_size", None) is not None:
        gh, gw = patch_embed.grid_size
        return int(gh), int(gw)
    return patch_grid(patch_embed, image.shape[-2:])


def _record_grid(patch_embed: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
    """Forward hook on a ViT's patch embedding: tell every LIFE of the model its grid.

    The LIFE modules are listed on the patch embedding as a plain list, so ``copy.deepcopy``
    of the model (EMA, teachers) keeps the copy's hook pointing at the copy's modules. Inside a
    ``torch.fx`` / ``torch.export`` / ``torch.compile`` trace this runs as part of the traced
    forward, so the grid is computed from each input's shape. TorchScript compiles the first
    branch instead: a scripted hook reaches only its own module, so it writes the grid into the
    (2,) tensor it shares with the model's LIFE modules.
    """
    if torch.jit.is_scripting():
        image = inputs[0]
        gh, gw = patch_embed.dynamic_feat_size((image.shape[-2], image.shape[-1]))
        cell = patch_embed._life_grid_cell
        cell[0] = gh
        cell[1] = gw
    else:
        grid = _input_grid(patch_embed, inputs[0])
        for m in patch_embed._life_modules:
            m.grid_size = grid


def _record_window(block: nn.Module, inputs: tuple[torch.Tensor]) -> None:
    """Forward pre-hook on a Swin block: its LIFE's grid is the attention window (which timm's
    ``set_input_size`` may change)."""
    attn = block.attn
    attn.qkv.grid_size = (attn.window_size[0], attn.window_size[1])


# --------------------------------------------------------------------------------------------
# Model conversion


def _model_name(model: nn.Module) -> str:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture") if isinstance(cfg, dict) else getattr(cfg, "architecture", None)
    return f"{arch} ({type(model).__name__})" if arch else type(model).__name__


_SUPPORTED = (
    "timm VisionTransformer / DeiT (also distilled, register tokens, T2T-ViT from lifestudy.models) "
    "and timm SwinTransformerV2"
)


def _check_qkv(model: nn.Module, attn: nn.Module, where: str) -> nn.Linear:
    qkv = getattr(attn, "qkv", None)
    if isinstance(qkv, LIFE):
        raise ConfigError(f"{_model_name(model)} already has LIFE in {where}: apply_life converts a model once")
    if not isinstance(qkv, nn.Linear):
        raise UnsupportedModelError(
            f"cannot convert {_model_name(model)}: {where} ({type(attn).__name__}) has no fused "
            f"nn.Linear qkv projection for LIFE to replace. Supported: {_SUPPORTED}"
        )
    return qkv


def _life_like(qkv: nn.Linear, dim: int, bias: bool, **life_kwargs) -> LIFE:
    if qkv.out_features != 3 * dim:
        raise UnsupportedModelError(
            f"LIFE maps C -> 3C channels, but this qkv maps {qkv.in_features} -> {qkv.out_features}"
        )
    kw = {"bias": bias, **life_kwargs}
    return LIFE(dim, **kw).to(device=qkv.weight.device, dtype=qkv.weight.dtype)


def _apply_vit(model: nn.Module, **life_kwargs) -> nn.Module:
    patch_drop = getattr(model, "patch_drop", None)
    if patch_drop is not None and getattr(patch_drop, "prob", 0.0) > 0:
        raise UnsupportedModelError(
            f"cannot convert {_model_name(model)}: PatchDropout (patch_drop_rate > 0) removes tokens "
            "from the grid LIFE convolves over; build the model with patch_drop_rate=0"
        )
    kw = {"num_prefix_tokens": model.num_prefix_tokens, **life_kwargs}
    for i, block in enumerate(model.blocks):
        attn = getattr(block, "attn", None)
        qkv = _check_qkv(model, attn, f"blocks[{i}].attn")
        if getattr(attn, "attn_dim", qkv.in_features) != qkv.in_features:
            raise UnsupportedModelError(
                f"cannot convert {_model_name(model)}: blocks[{i}].attn has attn_dim != dim"
            )
        attn.qkv = _life_like(qkv, qkv.in_features, qkv.bias is not None, **kw)
        if type(attn) is Attention:  # timm's own: it may run with LIFE in one pass
            attn.__class__ = LIFEAttention
    lifes = life_modules(model.blocks)
    patch_embed = model.patch_embed
    patch_embed._life_modules = lifes  # a plain list: not registered, not in state_dict
    patch_embed._life_grid_cell = cell = torch.zeros(2, dtype=torch.long)  # the grid under TorchScript
    fixed = getattr(patch_embed, "grid_size", None)
    for m in lifes:
        m._grid_cell = cell
        m.grid_size = (int(fixed[0]), int(fixed[1])) if fixed is not None else None
    patch_embed.register_forward_hook(_record_grid)
    return model


def _swin_calls_qkv_module(attn: nn.Module) -> bool:
    """Whether this timm's SwinV2 window attention calls ``self.qkv(x)`` when it has no q/v bias
    (timm >= 1.0.9); older timm always applies ``F.linear`` with ``qkv.weight``."""
    import inspect

    try:
        return "self.qkv(x)" in inspect.getsource(type(attn).forward)
    except (OSError, TypeError):  # no source to read: assume a current timm
        return True


def _apply_swinv2(model: nn.Module, **life_kwargs) -> nn.Module:
    import timm

    first = model.layers[0].blocks[0].attn
    if not _swin_calls_qkv_module(first):
        raise UnsupportedModelError(
            f"cannot convert {_model_name(model)}: timm {timm.__version__}'s SwinV2 attention applies its "
            "q/v bias through qkv.weight and never calls the qkv module; LIFE in SwinV2 needs timm >= 1.0.9"
        )
    if life_kwargs.get("num_prefix_tokens", 0):
        raise ConfigError("Swin windows have no prefix tokens: leave num_prefix_tokens out")
    life_kwargs = {k: v for k, v in life_kwargs.items() if k != "num_prefix_tokens"}
    for i, stage in enumerate(model.layers):
        for j, block in enumerate(stage.blocks):
            attn = block.attn
            qkv = _check_qkv(model, attn, f"layers[{i}].blocks[{j}].attn")
            has_bias = getattr(attn, "q_bias", None) is not None
            attn.qkv = _life_like(
                qkv, qkv.in_features, has_bias, num_prefix_tokens=0,
                grid_size=tuple(attn.window_size), **life_kwargs,
            )
            # timm's SwinV2 WindowAttention adds q_bias / v_bias through F.linear with
            # qkv.weight whenever q_bias is set; LIFE carries its own (scale-1) bias, so the
            # attention must call self.qkv(x) instead.
            attn.q_bias = None
            attn.v_bias = None
            if "k_bias" in attn._buffers:
                del attn._buffers["k_bias"]
            attn.k_bias = None
            block.register_forward_pre_hook(_record_window)
    return model


def apply_life(model: nn.Module, **life_kwargs) -> nn.Module:
    """Replace every attention ``qkv`` of a timm ViT/DeiT or SwinV2 ``model`` by LIFE, in place.

    ViT/DeiT (also distilled, register tokens): LIFE takes the model's ``num_prefix_tokens``
    and follows the patch grid of each input (a hook on ``model.patch_embed``). SwinV2: LIFE
    runs inside each window (the grid is the window; no prefix tokens). The LIFE modules are
    freshly initialised (the paper trains them from scratch); the rest of the model is kept.

    Args:
        model: the model to convert.
        life_kwargs: :class:`LIFE` options (``kernel_sizes``, ``bias``, ``qkv_norm``, ...);
            ``bias`` defaults to whether the model's qkv had one.

    Returns:
        the same ``model``.

    Raises:
        UnsupportedModelError: for any other model, naming it and what is unsupported.
    """
    from timm.models.swin_transformer_v2 import SwinTransformerV2
    from timm.models.vision_transformer import VisionTransformer

    if isinstance(model, VisionTransformer):
        return _apply_vit(model, **life_kwargs)
    if isinstance(model, SwinTransformerV2):
        return _apply_swinv2(model, **life_kwargs)
    raise UnsupportedModelError(f"cannot convert {_model_name(model)} to LIFE: supported are {_SUPPORTED}")
