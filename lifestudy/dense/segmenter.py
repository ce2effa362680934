"""Semantic segmentation on a ViT backbone: a light progressive-upsampling decoder.

Learned from SETR (Zheng et al., "Rethinking Semantic Segmentation from a
Sequence-to-Sequence Perspective with Transformers", CVPR 2021), whose PUP decoder
upsamples the ViT's patch-token grid by 2x per stage (3x3 conv, norm, ReLU, bilinear
upsampling) until the input resolution, then classifies every pixel with a 1x1 conv.
Here the stages stop once the grid is at most 2x below the image (patch 4: one stage;
patch 16: three), the classifier runs there, and the logits are resized bilinearly to the
exact ``H x W`` of the input — so any ``H x W`` that the patch size divides works, e.g.
Cityscapes' 2:1 frames.

``segmenter.backbone`` is the timm model itself (prefix tokens kept inside it), so
attention roll-out and checkpoint initialisation address it like a classifier.

**Class imbalance.** Most pixels of a scene (and of Cityscapes' road and sky) belong to a
few classes, and a segmenter trained with plain cross-entropy first learns to predict
those everywhere. :class:`SegmentationLoss` offers the three usual remedies, each
switchable (:class:`SegLossConfig`, all off by default; a profile sets them in
``DataSettings.seg_loss``, a run in ``TrainConfig.options["seg_loss"]``):

- **class-weighted cross-entropy** (``class_weighting``): per-class weights from the
  training pixels' class frequencies ``f_k`` (:func:`pixel_frequencies`): ``"median"``,
  median-frequency balancing ``median(f) / f_k`` (Eigen & Fergus, ICCV 2015, section 4.2;
  SegNet's choice); ``"enet"``, ``1 / ln(1.02 + f_k)`` (Paszke et al., "ENet", 2016,
  section 5.2: bounded, so rare classes cannot dominate); ``"inverse_sqrt"``,
  ``1 / sqrt(f_k)``; each rescaled so the average pixel weighs 1, keeping the loss on the
  scale the learning rate was set for;
- **Dice** (``dice_weight``): the soft multi-class Dice loss ``1 - mean_k 2|P_k Y_k| /
  (|P_k| + |Y_k|)`` on the softmax (Milletari et al., "V-Net", 3DV 2016; averaged over
  classes as in Sudre et al., "Generalised Dice overlap", DLMIA 2017, without their
  re-weighting), added to the cross-entropy with this weight; it scores every class's
  overlap equally, as mIoU does;
- **a prior on the logits** (``prior_init``): the classifier's bias starts at
  ``log f_k``, so the first predictions are the class prior and the early updates go to
  telling classes apart rather than learning their frequencies (the "prior probability"
  initialisation of Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017,
  section 4.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lifestudy.errors import ConfigError
from lifestudy.dense.backbone import (
    backbone_stride,
    backbone_width,
    create_backbone,
    feature_grid,
    describe_dense_model,
    load_backbone_checkpoint,
)

__all__ = [
    "PUPDecoder",
    "Segmenter",
    "build_segmenter",
    "SegLossConfig",
    "SegmentationLoss",
    "CLASS_WEIGHTINGS",
    "pixel_frequencies",
    "class_weights",
    "soft_dice_loss",
    "init_class_prior",
]

#: ``SegLossConfig.class_weighting`` rules (module docstring).
CLASS_WEIGHTINGS = ("none", "median", "enet", "inverse_sqrt")


class PUPDecoder(nn.Module):
    """SETR-PUP style decoder: ``num_stages`` x (3x3 conv, BatchNorm, ReLU, 2x bilinear
    upsampling), then a 1x1 classifier.

    Args:
        in_dim: channels of the backbone's feature grid.
        num_classes: classes K.
        dim: decoder width.
        num_stages: upsampling stages (each 2x).
    """

    def __init__(self, in_dim: int, num_classes: int, dim: int = 256, num_stages: int = 2):
        super().__init__()
        stages = []
        for i in range(num_stages):
            stages.append(nn.Sequential(
                nn.Conv2d(in_dim if i == 0 else dim, dim, 3, padding=1, bias=False),
                nn.BatchNorm2d(dim),
                nn.ReLU(inplace=True),
            ))
        self.stages = nn.ModuleList(stages)
        self.classifier = nn.Conv2d(dim if num_stages else in_dim, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = F.interpolate(stage(x), scale_factor=2, mode="bilinear", align_corners=False)
        return self.classifier(x)


class Segmenter(nn.Module):
    """``segmenter(images)`` -> logits (B, K, H, W) at the input's resolution."""

    def __init__(self, backbone: nn.Module, decoder: PUPDecoder):
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder

    @property
    def num_classes(self) -> int:
        return self.decoder.classifier.out_channels

    def describe(self) -> dict[str, Any]:
        """Head sizes, parameters (backbone / head) and what ``--init`` loaded, for records."""
        return describe_dense_model(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        H, W = images.shape[-2:]
        logits = self.decoder(feature_grid(self.backbone, images))
        if logits.shape[-2:] != (H, W):
            logits = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
        return logits


def build_segmenter(backbone: str, num_classes: int, img_size: tuple[int, int] | int = 224,
                    in_chans: int = 3, pretrained: bool = False, init: str | None = None,
                    drop_path_rate: float = 0.0, dim: int = 256, num_stages: int | None = None,
                    **backbone_kwargs: Any) -> Segmenter:
    """A segmenter: timm backbone + :class:`PUPDecoder`.

    Args:
        backbone: a registered timm name, e.g. ``deit_tiny_patch16_224_life``.
        num_classes: classes K (background included where the dataset has one).
        img_size: ``(H, W)``; any size the patch divides (others work at run time too).
        in_chans: image channels.
        pretrained: start the backbone from timm's pretrained weights.
        init: a classification checkpoint (or run folder) of ours for the backbone; what
            loaded is kept in ``segmenter.init_report``.
        drop_path_rate: the backbone's stochastic depth.
        dim: decoder width.
        num_stages: 2x upsampling stages; default: until the grid is at most 2x coarser
            than the image (log2(stride) - 1).
        backbone_kwargs: passed to ``timm.create_model``.
    """
    bb = create_backbone(backbone, img_size, in_chans=in_chans, pretrained=pretrained,
                         drop_path_rate=drop_path_rate, **backbone_kwargs)
    if num_stages is None:
        num_stages = max(int(math.log2(max(backbone_stride(bb)))) - 1, 0)
    seg = Segmenter(bb, PUPDecoder(backbone_width(bb), num_classes, dim=dim, num_stages=num_stages))
    seg.head_config = {"dim": dim, "num_stages": num_stages}
    seg.init_report = load_backbone_checkpoint(bb, init) if init else None
    return seg


# ----------------------------------------------------------------------------- the loss
@dataclass(frozen=True)
class SegLossConfig:
    """How a segmenter is trained against class imbalance (module docstring); recorded
    with each run through ``TrainConfig.options``."""

    class_weighting: str = "none"  # none | median | enet | inverse_sqrt: weights of the cross-entropy
    dice_weight: float = 0.0  # weight of the soft Dice loss added to the cross-entropy (0: off)
    prior_init: bool = False  # start the classifier's bias at the log class frequencies

    def __post_init__(self):
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ConfigError(f"class_weighting {self.class_weighting!r} is not one of {CLASS_WEIGHTINGS}")
        if not self.dice_weight >= 0:
            raise ConfigError(f"dice_weight must be >= 0, got {self.dice_weight}")

    @property
    def needs_frequencies(self) -> bool:
        return self.class_weighting != "none" or self.prior_init

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> "SegLossConfig":
        """The loss of a run: the fields in its ``options["seg_loss"]`` (the profile's
        ``DataSettings.seg_loss``, then the run's own), the others at their defaults."""
        given = dict((options or {}).get("seg_loss") or {})
        unknown = set(given) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"seg_loss: unknown field(s) {sorted(unknown)}; known: "
                              f"{', '.join(cls.__dataclass_fields__)}")
        return cls(class_weighting=str(given.get("class_weighting", cls.class_weighting)),
                   dice_weight=float(given.get("dice_weight", cls.dice_weight)),
                   prior_init=bool(given.get("prior_init", cls.prior_init)))


def pixel_frequencies(dataset, num_classes: int, ignore_index: int | None = 255,
                      max_items: int = 512) -> torch.Tensor:
    """Share of the labelled pixels in each class, ``(K,)``, over the dataset's semantic
    masks (at most ``max_items`` of them, evenly spaced; generated scenes are counted in
    full from their rendered arrays). Classes never seen get a small floor (half a pixel)
    so their log and inverse stay finite."""
    if callable(getattr(dataset, "canvases", None)):  # generated scenes: every canvas, as rendered
        labels = torch.from_numpy(dataset.canvases()["semantic"]).long().flatten()
    else:
        n = len(dataset)
        idx = sorted({int(i * n / min(n, max_items)) for i in range(min(n, max_items))})
        labels = torch.cat([torch.as_tensor(dataset[i][1]["semantic"]).as_subclass(torch.Tensor).long().flatten()
                            for i in idx])
    if ignore_index is not None:
        labels = labels[labels != ignore_index]
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ConfigError(f"the masks hold labels outside 0..{num_classes - 1}; is num_classes right?")
    counts = torch.bincount(labels, minlength=num_classes).double().clamp(min=0.5)
    return (counts / counts.sum()).float()


def class_weights(freq: torch.Tensor, rule: str) -> torch.Tensor | None:
    """Cross-entropy weights ``(K,)`` from class frequencies by ``rule`` (module
    docstring), scaled so that ``sum_k f_k w_k = 1``; None for ``"none"``."""
    if rule not in CLASS_WEIGHTINGS:
        raise ConfigError(f"class_weighting {rule!r} is not one of {CLASS_WEIGHTINGS}")
    if rule == "none":
        return None
    freq = freq.double()
    w = {"median": lambda f: f.median() / f, "enet": lambda f: 1.0 / torch.log(1.02 + f),
         "inverse_sqrt": lambda f: f.rsqrt()}[rule](freq)
    return (w / (w * freq).sum()).float()


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int | None = 255,
                   smooth: float = 1.0) -> torch.Tensor:
    """``1 - mean_k (2 sum P_k Y_k + s) / (sum P_k + sum Y_k + s)`` over the batch's
    labelled pixels, ``P`` the softmax of ``logits`` (B, K, H, W), ``Y`` one-hot labels."""
    K = logits.shape[1]
    prob = logits.float().softmax(1)
    valid = torch.ones_like(labels, dtype=torch.bool) if ignore_index is None else labels != ignore_index
    onehot = F.one_hot(labels.masked_fill(~valid, 0), K).permute(0, 3, 1, 2).float()
    v = valid[:, None].float()
    prob, onehot = prob * v, onehot * v
    inter = (prob * onehot).sum((0, 2, 3))
    denom = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1.0 - ((2 * inter + smooth) / (denom + smooth)).mean()


class SegmentationLoss(nn.Module):
    """Per-pixel cross-entropy (optionally class-weighted) plus ``dice_weight`` x soft Dice.

    Args:
        cfg: what to switch on.
        weights: ``(K,)`` cross-entropy weights (:func:`class_weights`), or None.
        ignore_index: label of pixels left out.
    """

    def __init__(self, cfg: SegLossConfig = SegLossConfig(), weights: torch.Tensor | None = None,
                 ignore_index: int | None = 255):
        super().__init__()
        self.cfg = cfg
        self.ignore_index = -100 if ignore_index is None else int(ignore_index)
        self.register_buffer("weights", weights, persistent=False)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(loss, {"loss_ce", "loss_dice"})`` for logits (B, K, H, W) and labels (B, H, W)."""
        w = None if self.weights is None else self.weights.to(logits.device)
        ce = F.cross_entropy(logits.float(), labels, weight=w, ignore_index=self.ignore_index)
        logs = {"loss_ce": ce.detach()}
        loss = ce
        if self.cfg.dice_weight > 0:
            dice = soft_dice_loss(logits, labels, self.ignore_index)
            loss = loss + self.cfg.dice_weight * dice
            logs["loss_dice"] = dice.detach()
        return loss, logs


@torch.no_grad()
def init_class_prior(segmenter: Segmenter, freq: torch.Tensor) -> None:
    """Set the classifier's bias to ``log freq`` (the prior initialisation above)."""
    bias = segmenter.decoder.classifier.bias
    if bias.shape != freq.shape:
        raise ConfigError(f"{len(freq)} class frequencies for a classifier of {len(bias)} classes")
    bias.copy_(freq.log().to(bias))
