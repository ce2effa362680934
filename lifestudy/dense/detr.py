"""A DETR-style encoder–decoder detection head on a ViT backbone, in three variants.

Learned from DETR (Carion et al., "End-to-End Object Detection with Transformers",
ECCV 2020; facebookresearch/detr ``models/detr.py``, ``models/transformer.py``) and
from the paper's detection study (Akkaya et al., arXiv 2305.08551, detection table):
the backbone's patch tokens become a feature grid (:mod:`lifestudy.dense.backbone`), a
1x1 input projection maps them to the head width, a transformer encoder runs over the
grid with 2D sine-cosine position embeddings, and a decoder turns learned object queries
into one class distribution (``num_classes`` + "no object") and one box each.

Head variants (``HEADS``), as in the paper's detection table:

- ``encdec`` — the standard head; the encoder's attention projection is timm's
  ``Linear(C, 3C)``.
- ``encdec-life`` — the encoder self-attention's ``qkv`` is LIFE over the feature grid
  (:class:`lifestudy.life.LIFE`, no prefix tokens): three cascaded scales, the 2nd and
  3rd with depthwise 3x3 and 5x5 convolutions over the grid before their pointwise stage.
- ``encdec-linear`` — the parameter-matched control without locality: the same cascade of
  pointwise stages, so each q/k/v projection gets extra linear stages, but the depthwise
  kernels are 1x1, so no token sees its neighbours. It differs from ``encdec-life`` only
  in the kernel size, i.e. in locality; its parameters are within ``32 C`` per encoder
  layer of LIFE's (``lifestudy complexity`` prints both).

Differences from DETR, all for small CPU-sized heads: blocks are pre-norm timm
``Block``s (so LIFE drops into ``attn.qkv`` exactly as in the backbone); the encoder
adds the position embedding once at its input (ViT style) rather than to q and k in every
layer; the decoder starts from learned query embeddings and attends to the memory with
the position embedding added to its keys, as DETR's cross-attention does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import Mlp, trunc_normal_, use_fused_attn
from timm.models.vision_transformer import Attention, Block
from torch import nn

from lifestudy.dense.backbone import (
    backbone_width,
    create_backbone,
    feature_grid,
    describe_dense_model,
    load_backbone_checkpoint,
)
from lifestudy.errors import ConfigError

__all__ = [
    "HEADS",
    "DetrHeadConfig",
    "sincos_pos_embed",
    "CrossAttention",
    "DecoderBlock",
    "DetrHead",
    "Detector",
    "build_detector",
]

#: Head variants of the paper's detection table -> depthwise kernel sizes of the encoder's
#: LIFE qkv (None: timm's plain Linear qkv).
HEADS: dict[str, tuple[int, int] | None] = {
    "encdec": None,
    "encdec-linear": (1, 1),
    "encdec-life": (3, 5),
}


@dataclass(frozen=True)
class DetrHeadConfig:
    """Sizes of the detection head. Defaults are DETR's (the paper profile); the smoke and
    cpu profiles use smaller heads (their ``DataSettings.head_sizes`` in ``lifestudy.profiles``)."""

    dim: int = 256  # head width C
    num_heads: int = 8
    enc_depth: int = 6  # encoder layers over the feature grid
    dec_depth: int = 6  # decoder layers
    mlp_ratio: float = 8.0  # MLP hidden = mlp_ratio * dim (DETR: 2048 = 8 * 256)
    num_queries: int = 100  # object queries = most detections per image

    def replace(self, **changes: Any) -> "DetrHeadConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(
                f"unknown detection-head option(s) {sorted(unknown)}; known: "
                f"{', '.join(f.name for f in dataclasses.fields(self))}"
            )
        return dataclasses.replace(self, **changes)


def sincos_pos_embed(gh: int, gw: int, dim: int, temperature: float = 10000.0,
                     device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """2D sine-cosine position embedding (N = gh*gw, dim) of DETR / MoCo-v3 (via timm),
    for grids of any shape."""
    from timm.layers import build_sincos2d_pos_embed

    return build_sincos2d_pos_embed([gh, gw], dim=dim, temperature=temperature,
                                    device=device, dtype=dtype)


class CrossAttention(nn.Module):
    """Multi-head attention of queries (B, Q, C) to a memory (B, N, C), DETR's decoder
    cross-attention; the memory's position embedding is added to the keys only. Written
    like timm's ``Attention`` (explicit products when fused attention is off, so MAC
    counters see them)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"head width {dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = use_fused_attn()
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor | None = None) -> torch.Tensor:
        B, Q, C = x.shape
        N = memory.shape[1]
        keys = memory if memory_pos is None else memory + memory_pos
        q = self.q(x).reshape(B, Q, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k(keys).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v(memory).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            x = attn.softmax(dim=-1) @ v
        return self.proj(x.transpose(1, 2).reshape(B, Q, C))


class DecoderBlock(nn.Module):
    """Pre-norm DETR decoder layer: query self-attention, cross-attention to the memory, MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 8.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads=num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = CrossAttention(dim, num_heads=num_heads)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), memory, memory_pos)
        return x + self.mlp(self.norm3(x))


class DetrHead(nn.Module):
    """Input projection, grid encoder, query decoder, class and box heads.

    Args:
        in_dim: channels of the backbone's feature grid.
        num_classes: object classes (the head adds one "no object" logit).
        variant: one of ``HEADS``.
        dim, num_heads, enc_depth, dec_depth, mlp_ratio, num_queries: head sizes (``DetrHeadConfig``).
        aux_loss: also return every decoder layer's predictions (DETR's auxiliary losses).
    """

    def __init__(self, in_dim: int, num_classes: int, variant: str = "encdec", dim: int = 256,
                 num_heads: int = 8, enc_depth: int = 6, dec_depth: int = 6, mlp_ratio: float = 8.0,
                 num_queries: int = 100, aux_loss: bool = True):
        super().__init__()
        if variant not in HEADS:
            raise ConfigError(f"unknown detection head {variant!r}; choose one of {list(HEADS)}")
        self.variant = variant
        self.num_classes = num_classes
        self.dim = dim
        self.aux_loss = aux_loss
        self.input_proj = nn.Conv2d(in_dim, dim, kernel_size=1)
        self.encoder = nn.ModuleList(
            [Block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True) for _ in range(enc_depth)]
        )
        kernel_sizes = HEADS[variant]
        if kernel_sizes is not None:
            from lifestudy.life import LIFE

            for blk in self.encoder:
                blk.attn.qkv = LIFE(dim, num_prefix_tokens=0, kernel_sizes=kernel_sizes, bias=True)
        self.enc_norm = nn.LayerNorm(dim)
        self.query_embed = nn.Parameter(torch.zeros(num_queries, dim))
        self.decoder = nn.ModuleList([DecoderBlock(dim, num_heads, mlp_ratio) for _ in range(dec_depth)])
        self.dec_norm = nn.LayerNorm(dim)
        self.class_embed = nn.Linear(dim, num_classes + 1)
        self.bbox_embed = Mlp(dim, dim, 4)  # DETR uses a 3-layer MLP; 2 layers suffice here
        self._init_weights()

    def _init_weights(self) -> None:
        """ViT's init (trunc-normal .02, zero biases); LIFE keeps its own (see its docstring)."""
        from lifestudy.life import life_modules

        in_life = {id(m) for life in life_modules(self) for m in life.modules()}
        trunc_normal_(self.query_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear) and id(m) not in in_life:
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.zeros_(self.bbox_embed.fc2.bias)  # boxes start near the centre, half the image

    def forward(self, features: torch.Tensor) -> dict[str, Any]:
        B, _, gh, gw = features.shape
        x = self.input_proj(features).flatten(2).transpose(1, 2)  # (B, N, C)
        pos = sincos_pos_embed(gh, gw, self.dim, device=x.device, dtype=x.dtype).unsqueeze(0)
        if HEADS[self.variant] is not None:
            from lifestudy.life import set_grid_size

            set_grid_size(self.encoder, (gh, gw))
        x = x + pos
        for blk in self.encoder:
            x = blk(x)
        memory = self.enc_norm(x)
        q = self.query_embed.unsqueeze(0).expand(B, -1, -1)
        outputs = []
        for blk in self.decoder:
            q = blk(q, memory, pos)
            outputs.append(self.dec_norm(q))
        hs = torch.stack(outputs) if self.aux_loss else outputs[-1].unsqueeze(0)
        logits = self.class_embed(hs)
        boxes = self.bbox_embed(hs).sigmoid()
        out: dict[str, Any] = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        if self.aux_loss:
            out["aux_outputs"] = [{"pred_logits": lg, "pred_boxes": bx} for lg, bx in zip(logits[:-1], boxes[:-1])]
        return out


class Detector(nn.Module):
    """``backbone`` (a timm model) + ``head`` (:class:`DetrHead`).

    ``detector(images)`` returns DETR's outputs: ``pred_logits`` (B, Q, K+1),
    ``pred_boxes`` (B, Q, 4) as normalised (cx, cy, w, h), and ``aux_outputs``.
    """

    def __init__(self, backbone: nn.Module, head: DetrHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def describe(self) -> dict[str, Any]:
        """Head sizes, parameters (backbone / head) and what ``--init`` loaded, for records."""
        return describe_dense_model(self)

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        return self.head(feature_grid(self.backbone, images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Detections per image in pixels: ``boxes`` (Q, 4) XYXY, ``scores``, ``labels``."""
        H, W = images.shape[-2:]
        return postprocess(self(images), (H, W))


def postprocess(outputs: dict[str, Any], image_size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
    """DETR's ``PostProcess``: each query's best real class and its softmax probability,
    boxes scaled to pixels (XYXY). Every query is returned; thresholds are the metric's job."""
    from torchvision.ops import box_convert

    H, W = image_size
    prob = outputs["pred_logits"].softmax(-1)[..., :-1]
    scores, labels = prob.max(-1)
    boxes = box_convert(outputs["pred_boxes"], "cxcywh", "xyxy")
    boxes = boxes * boxes.new_tensor([W, H, W, H])
    return [{"boxes": b, "scores": s, "labels": lab} for b, s, lab in zip(boxes, scores, labels)]


def build_detector(backbone: str, head: str = "encdec", num_classes: int = 20,
                   img_size: tuple[int, int] | int = 224, in_chans: int = 3,
                   pretrained: bool = False, init: str | None = None,
                   drop_path_rate: float = 0.0, aux_loss: bool = True,
                   sizes: DetrHeadConfig | None = None, **head_kwargs: Any) -> Detector:
    """A detector: timm backbone + DETR-style head of one of the ``HEADS`` variants.

    Args:
        backbone: a registered timm name, e.g. ``deit_tiny_patch16_224_life``.
        head: ``encdec``, ``encdec-linear`` or ``encdec-life``.
        num_classes: object classes, without "no object".
        img_size: ``(H, W)``; any size the patch divides (ViTs also accept others at run time).
        in_chans: image channels.
        pretrained: start the backbone from timm's pretrained weights.
        init: a classification checkpoint (or run folder) of ours to start the backbone from;
            what loaded is kept in ``detector.init_report``.
        drop_path_rate: the backbone's stochastic depth.
        aux_loss: decoder-layer auxiliary predictions.
        sizes: head sizes (default: DETR's).
        head_kwargs: changes to ``sizes`` (``dim=96, enc_depth=2, ...``).
    """
    if head not in HEADS:
        raise ConfigError(f"unknown detection head {head!r}; choose one of {list(HEADS)}")
    sizes = (sizes or DetrHeadConfig()).replace(**head_kwargs)
    bb = create_backbone(backbone, img_size, in_chans=in_chans, pretrained=pretrained,
                         drop_path_rate=drop_path_rate)
    det = Detector(bb, DetrHead(backbone_width(bb), num_classes, variant=head, aux_loss=aux_loss,
                                **dataclasses.asdict(sizes)))
    det.head_config = {"head": head, **dataclasses.asdict(sizes)}
    det.init_report = load_backbone_checkpoint(bb, init) if init else None
    return det
