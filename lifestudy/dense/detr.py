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
import math
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
    "box_sine_embed",
    "box_attention_prior",
    "grid_anchors",
    "inverse_sigmoid",
    "denoising_queries",
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
    """Sizes of the detection head and its convergence aids (each switchable).

    Defaults are DETR's sizes and DETR's own training (the paper profile): softmax
    cross-entropy, one group of learned queries, boxes predicted from scratch by each
    decoder layer, auxiliary losses on. The smoke and cpu profiles use smaller heads and
    turn aids on (their ``DataSettings.head_sizes`` in ``lifestudy.profiles``); each aid's source is given
    beside its field, and the detection chapter measures what each one gains.
    """

    dim: int = 256  # head width C
    num_heads: int = 8
    enc_depth: int = 6  # encoder layers over the feature grid
    dec_depth: int = 6  # decoder layers
    mlp_ratio: float = 8.0  # MLP hidden = mlp_ratio * dim (DETR: 2048 = 8 * 256)
    num_queries: int = 100  # object queries = most detections per image
    # ---- convergence aids ----------------------------------------------------------
    # DETR's auxiliary decoding losses: every decoder layer's predictions are matched and
    # scored, not only the last one's (Carion et al. 2020, section 3.2).
    aux_loss: bool = True
    # Sigmoid focal loss for the classes, in the loss and in the matching cost, with no
    # "no object" logit (Deformable DETR, Zhu et al. ICLR 2021; focal loss: Lin et al. 2017).
    focal: bool = False
    # Reference boxes refined layer by layer: each query owns a learned anchor box, its
    # positional query is an MLP of the box's sine embedding, and every decoder layer
    # predicts an offset to the previous layer's box in inverse-sigmoid space (DAB-DETR,
    # Liu et al. ICLR 2022; Deformable DETR's iterative box refinement). Anchors start on
    # a regular grid over the image (Anchor DETR, Wang et al. AAAI 2022).
    box_refine: bool = False
    # One-to-many matching by query groups: in training, ``query_groups`` independent
    # groups of ``num_queries`` queries, self-attention within a group only, each group
    # matched one-to-one; inference runs the first group only (Group DETR, Chen et al.
    # ICCV 2023).
    query_groups: int = 1
    # Cross-attention modulated by a Gaussian around each query's reference box (its
    # centre, spread half its size), added to the attention logits, so a query looks
    # first where its box is (SMCA, Gao et al. ICCV 2021). Needs ``box_refine``.
    spatial_prior: bool = False
    # Denoising queries: in training, ``dn_groups`` extra groups of queries, one per
    # ground-truth object, start at its box jittered (centre moved by up to ``dn_box_noise``
    # x half its size, sides scaled by up to 1 +- ``dn_box_noise``) and must give back its
    # class and box, with no matching; they attend only within their group and the matching
    # queries never see them (DN-DETR, Li et al. CVPR 2022, box denoising; its noise scale
    # 0.4). Unlike DN-DETR their content starts at zero, as the matching queries' does, not
    # at an embedding of the (noised) label: the class must come from the image, which is
    # what these detectors fail to learn. Needs ``box_refine``; inference is unchanged.
    dn_groups: int = 0
    dn_box_noise: float = 0.4
    # Loss and matching-cost weights (DETR: class 1, L1 5, GIoU 2, no-object 0.1;
    # Deformable DETR with focal loss: class 2).
    class_weight: float = 1.0
    l1_weight: float = 5.0
    giou_weight: float = 2.0
    eos_coef: float = 0.1  # softmax only: weight of the "no object" class
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    def replace(self, **changes: Any) -> "DetrHeadConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(
                f"unknown detection-head option(s) {sorted(unknown)}; known: "
                f"{', '.join(f.name for f in dataclasses.fields(self))}"
            )
        return dataclasses.replace(self, **changes)

    def __post_init__(self):
        if self.query_groups < 1 or self.num_queries < 1:
            raise ConfigError(f"num_queries ({self.num_queries}) and query_groups ({self.query_groups}) "
                              "must be >= 1")
        if self.spatial_prior and not self.box_refine:
            raise ConfigError("spatial_prior needs reference boxes: set box_refine=True as well")
        if self.dn_groups < 0 or not 0 <= self.dn_box_noise <= 1:
            raise ConfigError(f"dn_groups ({self.dn_groups}) must be >= 0 and dn_box_noise "
                              f"({self.dn_box_noise}) in [0, 1]")
        if self.dn_groups and not self.box_refine:
            raise ConfigError("dn_groups (denoising queries) needs reference boxes: set box_refine=True as well")

    @property
    def architecture(self) -> dict[str, Any]:
        """The fields that shape the module (the rest only shape its training)."""
        keys = ("dim", "num_heads", "enc_depth", "dec_depth", "mlp_ratio", "num_queries",
                "aux_loss", "focal", "box_refine", "query_groups", "spatial_prior")
        return {k: getattr(self, k) for k in keys}


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

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor | None = None,
                attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        """``attn_bias`` (B, Q, N), optional, is added to every head's attention logits."""
        B, Q, C = x.shape
        N = memory.shape[1]
        keys = memory if memory_pos is None else memory + memory_pos
        q = self.q(x).reshape(B, Q, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k(keys).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v(memory).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        bias = None if attn_bias is None else attn_bias.unsqueeze(1).to(q.dtype)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            if bias is not None:
                attn = attn + bias
            x = attn.softmax(dim=-1) @ v
        return self.proj(x.transpose(1, 2).reshape(B, Q, C))


class DecoderBlock(nn.Module):
    """Pre-norm DETR decoder layer: query self-attention, cross-attention to the memory, MLP.

    ``query_pos`` (B, Q, C), the queries' positional embedding, is added to the normed
    queries before self- and cross-attention (DETR adds it to q and k; here, where timm's
    self-attention computes q, k, v from one input, it reaches v too). With ``groups`` > 1
    the Q queries are that many independent groups that do not attend to each other
    (Group DETR); cross-attention is per query and needs no mask."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 8.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads=num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = CrossAttention(dim, num_heads=num_heads)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor,
                query_pos: torch.Tensor | None = None, groups: int = 1,
                attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        B, Q, C = x.shape
        h = self.norm1(x) if query_pos is None else self.norm1(x) + query_pos
        if groups > 1:  # groups become batch entries: attention stays inside a group
            h = self.self_attn(h.reshape(B * groups, Q // groups, C)).reshape(B, Q, C)
        else:
            h = self.self_attn(h)
        x = x + h
        h = self.norm2(x) if query_pos is None else self.norm2(x) + query_pos
        x = x + self.cross_attn(h, memory, memory_pos, attn_bias)
        return x + self.mlp(self.norm3(x))


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``logit(x)`` clamped away from 0 and 1 (Deformable DETR's ``inverse_sigmoid``)."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def box_sine_embed(boxes: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Sine embedding of normalised (cx, cy, w, h) boxes (..., 4) -> (..., 2 * dim): each
    coordinate gets ``dim // 2`` sine/cosine features (DAB-DETR's ``gen_sineembed_for_position``)."""
    n = dim // 2
    freq = temperature ** (2 * (torch.arange(n, device=boxes.device, dtype=boxes.dtype) // 2) / n)
    angles = boxes.unsqueeze(-1) * (2 * torch.pi) / freq  # (..., 4, n)
    emb = torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)
    return emb.flatten(-2)


def box_attention_prior(boxes: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """Log of a Gaussian around each box over the grid's cell centres (SMCA's spatial
    prior): boxes (B, Q, 4) normalised cxcywh -> (B, Q, gh * gw) additive attention logits,
    0 at the box centre, spread half the box's width / height (at least one cell)."""
    ys = (torch.arange(gh, device=boxes.device, dtype=boxes.dtype) + 0.5) / gh
    xs = (torch.arange(gw, device=boxes.device, dtype=boxes.dtype) + 0.5) / gw
    cx, cy, w, h = boxes.unbind(-1)
    sx = (w / 2).clamp(min=1 / gw).unsqueeze(-1)
    sy = (h / 2).clamp(min=1 / gh).unsqueeze(-1)
    dx = ((xs.view(1, 1, -1) - cx.unsqueeze(-1)) / sx) ** 2  # (B, Q, gw)
    dy = ((ys.view(1, 1, -1) - cy.unsqueeze(-1)) / sy) ** 2  # (B, Q, gh)
    return -0.5 * (dy.unsqueeze(-1) + dx.unsqueeze(-2)).flatten(-2)


def grid_anchors(num: int) -> torch.Tensor:
    """``num`` anchor boxes (cx, cy, w, h) with centres on the most nearly square grid
    over the unit image (row-major) and the size of one grid cell."""
    rows = max(1, int(math.floor(math.sqrt(num))))
    while num % rows:
        rows -= 1
    cols = num // rows
    cy = (torch.arange(rows, dtype=torch.float32) + 0.5) / rows
    cx = (torch.arange(cols, dtype=torch.float32) + 0.5) / cols
    yy, xx = torch.meshgrid(cy, cx, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten(), torch.full((num,), 1 / cols),
                        torch.full((num,), 1 / rows)], dim=-1)


class DetrHead(nn.Module):
    """Input projection, grid encoder, query decoder, class and box heads.

    Args:
        in_dim: channels of the backbone's feature grid.
        num_classes: object classes (the softmax head adds one "no object" logit).
        variant: one of ``HEADS``.
        config: sizes and convergence aids (:class:`DetrHeadConfig`).
    """

    def __init__(self, in_dim: int, num_classes: int, variant: str = "encdec",
                 config: DetrHeadConfig | None = None, **changes: Any):
        super().__init__()
        if variant not in HEADS:
            raise ConfigError(f"unknown detection head {variant!r}; choose one of {list(HEADS)}")
        cfg = (config or DetrHeadConfig()).replace(**changes)
        self.config = cfg
        self.variant = variant
        self.num_classes = num_classes
        self.dim = dim = cfg.dim
        self.aux_loss = cfg.aux_loss
        self.input_proj = nn.Conv2d(in_dim, dim, kernel_size=1)
        self.encoder = nn.ModuleList(
            [Block(dim, cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=True) for _ in range(cfg.enc_depth)]
        )
        kernel_sizes = HEADS[variant]
        if kernel_sizes is not None:
            from lifestudy.life import LIFE

            for blk in self.encoder:
                blk.attn.qkv = LIFE(dim, num_prefix_tokens=0, kernel_sizes=kernel_sizes, bias=True)
        self.enc_norm = nn.LayerNorm(dim)
        total_queries = cfg.num_queries * cfg.query_groups
        if cfg.box_refine:
            # learned anchors (inverse-sigmoid space), one grid per group
            anchors = grid_anchors(cfg.num_queries).repeat(cfg.query_groups, 1)
            self.anchors = nn.Parameter(inverse_sigmoid(anchors))
            self.query_embed = None
            self.ref_point_head = Mlp(2 * dim, dim, dim)
        else:
            self.anchors = None
            self.query_embed = nn.Parameter(torch.zeros(total_queries, dim))  # DETR's learned query_pos
        self.decoder = nn.ModuleList([DecoderBlock(dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.dec_depth)])
        self.dec_norm = nn.LayerNorm(dim)
        self.class_embed = nn.Linear(dim, num_classes + (0 if cfg.focal else 1))
        self.bbox_embed = Mlp(dim, dim, 4)  # DETR uses a 3-layer MLP; 2 layers suffice here
        self._init_weights()

    def _init_weights(self) -> None:
        """ViT's init (trunc-normal .02, zero biases); LIFE keeps its own (see its docstring).
        With focal loss the class bias starts at the prior 0.01 (RetinaNet, Deformable DETR)."""
        from lifestudy.life import life_modules

        in_life = {id(m) for life in life_modules(self) for m in life.modules()}
        if self.query_embed is not None:
            # DETR's nn.Embedding default, N(0, 1): queries must differ at the scale of the
            # normed features, or they all attend alike and collapse onto one mean box
            nn.init.normal_(self.query_embed)
        for m in self.modules():
            if isinstance(m, nn.Linear) and id(m) not in in_life:
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.zeros_(self.bbox_embed.fc2.bias)  # boxes start at the anchors / the centre, half the image
        if self.config.box_refine:
            nn.init.zeros_(self.bbox_embed.fc2.weight)  # ... exactly at the anchors
        if self.config.focal:
            nn.init.constant_(self.class_embed.bias, -math.log((1 - 0.01) / 0.01))

    def _decode_boxes(self, ref: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, groups: int,
                      grid: tuple[int, int]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The decoder with reference boxes: queries (B, Q) start at zero content at boxes
        ``ref`` (B, Q, 4); every layer refines the box. Returns each layer's logits and boxes."""
        q = memory.new_zeros(*ref.shape[:2], self.dim)  # DETR: the decoder's content starts at zero
        logits, boxes = [], []
        for blk in self.decoder:
            query_pos = self.ref_point_head(box_sine_embed(ref, self.dim))
            bias = box_attention_prior(ref, *grid) if self.config.spatial_prior else None
            q = blk(q, memory, pos, query_pos, groups, bias)
            hs = self.dec_norm(q)
            box = (self.bbox_embed(hs) + inverse_sigmoid(ref)).sigmoid()
            logits.append(self.class_embed(hs))
            boxes.append(box)
            ref = box.detach()  # the next layer refines this box; gradients stay per layer
        return logits, boxes

    def forward(self, features: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None) -> dict[str, Any]:
        """DETR's outputs; in training, with ``dn_groups`` and ``targets`` (normalised
        cxcywh boxes), also the denoising queries' (``"dn"``: :func:`denoising_queries`)."""
        cfg = self.config
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
        groups = cfg.query_groups if self.training else 1
        nq = cfg.num_queries * groups
        dn = None
        if cfg.box_refine:
            ref = self.anchors[:nq].sigmoid().unsqueeze(0).expand(B, -1, -1)
            logits, boxes = self._decode_boxes(ref, memory, pos, groups, (gh, gw))
            if self.training and cfg.dn_groups and targets is not None:
                dn = denoising_queries(targets, cfg.dn_groups, cfg.dn_box_noise, memory.device)
                dn["pred_logits"], dn["pred_boxes"] = self._decode_boxes(
                    dn.pop("ref"), memory, pos, cfg.dn_groups, (gh, gw))
        else:
            q = memory.new_zeros(B, nq, self.dim)  # DETR: the decoder's content starts at zero
            logits, boxes = [], []
            query_pos = self.query_embed[:nq].unsqueeze(0).expand(B, -1, -1)
            for blk in self.decoder:
                q = blk(q, memory, pos, query_pos, groups)
                hs = self.dec_norm(q)
                if self.aux_loss or blk is self.decoder[-1]:
                    logits.append(self.class_embed(hs))
                    boxes.append(self.bbox_embed(hs).sigmoid())
        out: dict[str, Any] = {"pred_logits": logits[-1], "pred_boxes": boxes[-1], "query_groups": groups}
        if self.aux_loss:
            out["aux_outputs"] = [{"pred_logits": lg, "pred_boxes": bx} for lg, bx in zip(logits[:-1], boxes[:-1])]
        if dn is not None:
            out["dn"] = dn
        return out


def denoising_queries(targets: list[dict[str, torch.Tensor]], groups: int, noise: float,
                      device: torch.device) -> dict[str, Any]:
    """DN-DETR's noised ground truth: ``groups`` groups per image, each holding every
    object of the image once (padded to the batch's most objects, M), its box jittered.

    Returns ``ref`` (B, groups * M, 4): the jittered boxes, normalised cxcywh, where the
    queries start; ``labels`` and ``boxes`` (B, groups * M): the objects they must give back;
    ``valid`` (B, groups * M): False on padding. Draws from torch's global generator, so a
    seeded run draws the same noise.
    """
    B = len(targets)
    M = max([len(t["labels"]) for t in targets] + [1])
    boxes = torch.zeros(B, M, 4, device=device)
    boxes[..., :2], boxes[..., 2:] = 0.5, 1.0  # padding: the whole image, ignored by the loss
    labels = torch.zeros(B, M, dtype=torch.int64, device=device)
    valid = torch.zeros(B, M, dtype=torch.bool, device=device)
    for b, t in enumerate(targets):
        n = len(t["labels"])
        boxes[b, :n], labels[b, :n], valid[b, :n] = t["boxes"].to(device), t["labels"].to(device), True
    boxes, labels, valid = boxes.repeat(1, groups, 1), labels.repeat(1, groups), valid.repeat(1, groups)
    jitter = torch.rand(boxes.shape, device=device) * 2 - 1  # uniform in [-1, 1]
    size = boxes[..., 2:]
    ref = torch.cat([boxes[..., :2] + jitter[..., :2] * noise * size / 2,
                     size * (1 + jitter[..., 2:] * noise)], dim=-1).clamp(1e-3, 1 - 1e-3)
    return {"ref": ref, "labels": labels, "boxes": boxes, "valid": valid, "groups": groups}


class Detector(nn.Module):
    """``backbone`` (a timm model) + ``head`` (:class:`DetrHead`).

    ``detector(images)`` returns DETR's outputs: ``pred_logits`` (B, Q, K+1), or (B, Q, K)
    with focal loss, ``pred_boxes`` (B, Q, 4) as normalised (cx, cy, w, h), and
    ``aux_outputs``. In training mode Q counts every query group; in eval mode, one group.
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

    def forward(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None) -> dict[str, Any]:
        """``targets`` (normalised cxcywh boxes) feed the head's denoising queries in training."""
        return self.head(feature_grid(self.backbone, images), targets)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Detections per image in pixels: ``boxes`` (Q, 4) XYXY, ``scores``, ``labels``."""
        H, W = images.shape[-2:]
        return postprocess(self(images), (H, W), sigmoid=self.head.config.focal)


def postprocess(outputs: dict[str, Any], image_size: tuple[int, int],
                sigmoid: bool = False) -> list[dict[str, torch.Tensor]]:
    """DETR's ``PostProcess``: each query's best real class and its probability (softmax
    over the classes and "no object"; with ``sigmoid``, the focal head's per-class
    sigmoid), boxes scaled to pixels (XYXY). Every query is returned; thresholds are the
    metric's job."""
    from torchvision.ops import box_convert

    H, W = image_size
    logits = outputs["pred_logits"]
    prob = logits.sigmoid() if sigmoid else logits.softmax(-1)[..., :-1]
    scores, labels = prob.max(-1)
    boxes = box_convert(outputs["pred_boxes"], "cxcywh", "xyxy")
    boxes = boxes * boxes.new_tensor([W, H, W, H])
    return [{"boxes": b, "scores": s, "labels": lab} for b, s, lab in zip(boxes, scores, labels)]


def build_detector(backbone: str, head: str = "encdec", num_classes: int = 20,
                   img_size: tuple[int, int] | int = 224, in_chans: int = 3,
                   pretrained: bool = False, init: str | None = None,
                   drop_path_rate: float = 0.0, aux_loss: bool | None = None,
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
        aux_loss: decoder-layer auxiliary predictions (None: the config's).
        sizes: head sizes and aids (default: DETR's).
        head_kwargs: changes to ``sizes`` (``dim=96, enc_depth=2, focal=True, ...``).
    """
    if head not in HEADS:
        raise ConfigError(f"unknown detection head {head!r}; choose one of {list(HEADS)}")
    sizes = (sizes or DetrHeadConfig()).replace(**head_kwargs)
    if aux_loss is not None:
        sizes = sizes.replace(aux_loss=aux_loss)
    bb = create_backbone(backbone, img_size, in_chans=in_chans, pretrained=pretrained,
                         drop_path_rate=drop_path_rate)
    det = Detector(bb, DetrHead(backbone_width(bb), num_classes, variant=head, config=sizes))
    det.head_config = {"head": head, **dataclasses.asdict(sizes)}
    det.init_report = load_backbone_checkpoint(bb, init) if init else None
    return det
