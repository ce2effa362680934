"""Hungarian matching and DETR's set-prediction losses.

Learned from DETR (Carion et al., ECCV 2020; facebookresearch/detr ``models/matcher.py``
and ``models/detr.py`` ``SetCriterion``). Each image's predictions (one per query) are
matched one-to-one to its ground-truth objects by the assignment of least cost
(``scipy.optimize.linear_sum_assignment``), where the cost of pairing query i with object
j is ``w_class * (-p_i(class_j)) + w_l1 * |box_i - box_j|_1 + w_giou * (-GIoU(box_i, box_j))``.
The loss is then cross-entropy over ``num_classes + 1`` classes (unmatched queries must
say "no object", down-weighted by ``eos_coef``), plus L1 and generalised-IoU losses on the
matched boxes (``torchvision.ops.generalized_box_iou_loss``), each averaged over the
number of ground-truth objects in the batch.

Boxes here are normalised ``(cx, cy, w, h)`` in [0, 1], as the head predicts them;
:func:`normalize_boxes` turns pixel XYXY targets into that form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn
from torchvision.ops import box_convert, generalized_box_iou, generalized_box_iou_loss, sigmoid_focal_loss

__all__ = ["LossWeights", "normalize_boxes", "hungarian_match", "SetCriterion"]


@dataclass
class LossWeights:
    """DETR's weights, used both as matching costs and loss weights; ``focal`` switches the
    class term to Deformable DETR's sigmoid focal loss (no "no object" logit), in the loss
    and in the matching cost alike."""

    ce: float = 1.0  # classification (softmax matching cost: -probability of the object's class)
    l1: float = 5.0  # L1 on normalised cxcywh boxes
    giou: float = 2.0  # generalised IoU
    eos_coef: float = 0.1  # softmax: relative weight of the "no object" class in the cross-entropy
    focal: bool = False  # sigmoid focal loss and focal matching cost (Zhu et al. 2021)
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    @classmethod
    def from_head(cls, config) -> "LossWeights":
        """The weights a :class:`lifestudy.dense.DetrHeadConfig` asks for."""
        return cls(ce=config.class_weight, l1=config.l1_weight, giou=config.giou_weight,
                   eos_coef=config.eos_coef, focal=config.focal, focal_alpha=config.focal_alpha,
                   focal_gamma=config.focal_gamma)


def normalize_boxes(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Pixel XYXY boxes (n, 4) of an ``(H, W)`` image -> normalised (cx, cy, w, h)."""
    H, W = image_size
    boxes = boxes.as_subclass(torch.Tensor).float() / boxes.new_tensor([W, H, W, H], dtype=torch.float32)
    return box_convert(boxes, "xyxy", "cxcywh")


def _class_cost(pred_logits: torch.Tensor, tgt_labels: torch.Tensor, weights: LossWeights) -> torch.Tensor:
    """(P, T) cost of each prediction for each target's class."""
    if weights.focal:  # Deformable DETR's matcher: focal loss of "yes" minus that of "no"
        p = pred_logits.float().sigmoid()
        a, g = weights.focal_alpha, weights.focal_gamma
        neg = (1 - a) * p.pow(g) * -(1 - p + 1e-8).log()
        pos = a * (1 - p).pow(g) * -(p + 1e-8).log()
        return (pos - neg)[:, tgt_labels]
    return -pred_logits.float().softmax(-1)[:, tgt_labels]


@torch.no_grad()
def hungarian_match(pred_logits: torch.Tensor, pred_boxes: torch.Tensor,
                    targets: list[dict[str, torch.Tensor]],
                    weights: LossWeights = LossWeights(), groups: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each image, ``(query_idx, target_idx)`` of the least-cost one-to-one assignment.

    Args:
        pred_logits: (B, Q, K+1) class logits, the last one "no object" ((B, Q, K) with focal).
        pred_boxes: (B, Q, 4) normalised cxcywh.
        targets: per image ``{"labels": (n,), "boxes": (n, 4) normalised cxcywh}``.
        weights: the costs' weights.
        groups: the Q queries are this many equal groups, each matched one-to-one on its own
            (Group DETR), so every object gets ``groups`` queries.
    """
    B, Q = pred_logits.shape[:2]
    sizes = [len(t["labels"]) for t in targets]
    empty = torch.empty(0, dtype=torch.int64)
    if sum(sizes) == 0:
        return [(empty, empty) for _ in targets]
    # One cost matrix for the whole batch, moved to the CPU once (as DETR does), then
    # one assignment per image (and group) on its own block.
    boxes = pred_boxes.flatten(0, 1).float()
    tgt_labels = torch.cat([t["labels"] for t in targets]).to(pred_logits.device)
    tgt_boxes = torch.cat([t["boxes"] for t in targets]).to(boxes)
    cost = (weights.ce * _class_cost(pred_logits.flatten(0, 1), tgt_labels, weights)
            + weights.l1 * torch.cdist(boxes, tgt_boxes, p=1)
            + weights.giou * -generalized_box_iou(box_convert(boxes, "cxcywh", "xyxy"),
                                                  box_convert(tgt_boxes, "cxcywh", "xyxy")))
    cost = cost.view(B, Q, -1).cpu()
    per_group = Q // groups
    matches = []
    for b, block in enumerate(cost.split(sizes, dim=-1)):
        if sizes[b] == 0:
            matches.append((empty, empty))
            continue
        rows_all, cols_all = [], []
        for g in range(groups):
            rows, cols = linear_sum_assignment(block[b, g * per_group:(g + 1) * per_group].numpy())
            rows_all.append(torch.as_tensor(rows, dtype=torch.int64) + g * per_group)
            cols_all.append(torch.as_tensor(cols, dtype=torch.int64))
        matches.append((torch.cat(rows_all), torch.cat(cols_all)))
    return matches


def _box_losses(src: torch.Tensor, tgt: torch.Tensor, num_boxes: float) -> dict[str, torch.Tensor]:
    """L1 and generalised-IoU losses of paired cxcywh boxes (n, 4), summed, over ``num_boxes``."""
    return {"loss_l1": F.l1_loss(src, tgt, reduction="sum") / num_boxes,
            "loss_giou": generalized_box_iou_loss(box_convert(src, "cxcywh", "xyxy"), box_convert(tgt, "cxcywh", "xyxy"),
                                                  reduction="sum") / num_boxes}


class SetCriterion(nn.Module):
    """DETR's loss: match, then classification + L1 + GIoU (and the same on every decoder
    layer's auxiliary outputs). ``forward`` returns ``(loss, logs)`` where ``logs`` holds
    the unweighted ``loss_ce``, ``loss_l1``, ``loss_giou`` of the final layer.

    The class term is DETR's cross-entropy over ``num_classes + 1`` (unmatched queries
    must say "no object", down-weighted by ``eos_coef``), or with ``weights.focal`` the
    sigmoid focal loss of Deformable DETR over ``num_classes`` logits (unmatched queries
    must say "no" to every class), summed and divided by the number of objects. When the
    outputs carry ``query_groups`` > 1 (Group DETR), each group is matched on its own and
    the losses are averaged over groups. When they carry ``dn`` (denoising queries,
    DN-DETR), each decoder layer's denoising losses are added with the same weights
    (:meth:`denoising`), logged as ``dn_loss_ce`` etc.

    Args:
        num_classes: object classes, without "no object".
        weights: matching costs and loss weights.
    """

    def __init__(self, num_classes: int, weights: LossWeights | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.weights = weights or LossWeights()
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = self.weights.eos_coef
        self.register_buffer("empty_weight", empty_weight, persistent=False)

    def _focal(self, logits: torch.Tensor, onehot: torch.Tensor, num_boxes: float) -> torch.Tensor:
        """Deformable DETR's class term: the sigmoid focal loss, summed, over ``num_boxes``."""
        return sigmoid_focal_loss(logits.float(), onehot, alpha=self.weights.focal_alpha,
                                  gamma=self.weights.focal_gamma, reduction="sum") / num_boxes

    def _add_weighted(self, total: torch.Tensor, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """``total`` plus one set of losses (:meth:`single`, :meth:`denoising`) with the weights."""
        w = self.weights
        return total + w.ce * parts["loss_ce"] + w.l1 * parts["loss_l1"] + w.giou * parts["loss_giou"]

    def single(self, outputs: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]],
               num_boxes: float, groups: int = 1) -> dict[str, torch.Tensor]:
        """Unweighted losses of one set of predictions."""
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        matches = hungarian_match(logits, boxes, targets, self.weights, groups)
        B, Q = logits.shape[:2]
        batch_idx = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(matches)]).to(logits.device)
        query_idx = torch.cat([q for q, _ in matches]).to(logits.device)
        matched_labels = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, matches)]).to(logits.device)
        num_boxes = num_boxes * groups
        if self.weights.focal:
            onehot = torch.zeros_like(logits, dtype=torch.float32)
            onehot[batch_idx, query_idx, matched_labels] = 1.0
            loss_ce = self._focal(logits, onehot, num_boxes)
        else:
            target_classes = torch.full((B, Q), self.num_classes, dtype=torch.int64, device=logits.device)
            target_classes[batch_idx, query_idx] = matched_labels
            loss_ce = F.cross_entropy(logits.float().transpose(1, 2), target_classes,
                                      weight=self.empty_weight.to(logits.device))
        src = boxes[batch_idx, query_idx].float()
        tgt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, matches)]).to(src)
        return {"loss_ce": loss_ce, **_box_losses(src, tgt, num_boxes)}

    def denoising(self, dn: dict[str, Any], layer: int, num_boxes: float) -> dict[str, torch.Tensor]:
        """Unweighted losses of one decoder layer's denoising queries (``outputs["dn"]``, see
        :func:`lifestudy.dense.detr.denoising_queries`): each query is scored against the
        object it was made from (no matching), padding left out; divided like
        :meth:`single`'s, by the objects times the groups."""
        valid = dn["valid"]
        logits, boxes = dn["pred_logits"][layer][valid].float(), dn["pred_boxes"][layer][valid].float()
        labels, tgt = dn["labels"][valid], dn["boxes"][valid].to(boxes)
        num_boxes = num_boxes * dn["groups"]
        if self.weights.focal:
            loss_ce = self._focal(logits, F.one_hot(labels, logits.shape[-1]).to(logits), num_boxes)
        else:
            loss_ce = F.cross_entropy(logits, labels, reduction="sum") / num_boxes
        return {"loss_ce": loss_ce, **_box_losses(boxes, tgt, num_boxes)}

    def forward(self, outputs: dict[str, Any], targets: list[dict[str, torch.Tensor]]):
        device = outputs["pred_logits"].device
        groups = int(outputs.get("query_groups", 1))
        num_boxes = float(sum(len(t["labels"]) for t in targets))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            n = torch.tensor([num_boxes], device=device)
            torch.distributed.all_reduce(n)
            num_boxes = n.item() / torch.distributed.get_world_size()
        num_boxes = max(num_boxes, 1.0)
        total = outputs["pred_logits"].new_zeros((), dtype=torch.float32)
        logs: dict[str, float] = {}
        for i, out in enumerate([outputs, *outputs.get("aux_outputs", [])]):
            parts = self.single(out, targets, num_boxes, groups)
            total = self._add_weighted(total, parts)
            if i == 0:
                logs = {k: float(v.detach()) for k, v in parts.items()}
        dn = outputs.get("dn")
        for layer in range(len(dn["pred_logits"]) if dn else 0):  # every decoder layer's, as aux losses
            parts = self.denoising(dn, layer, num_boxes)
            total = self._add_weighted(total, parts)
            if layer == len(dn["pred_logits"]) - 1:
                logs.update({f"dn_{k}": float(v.detach()) for k, v in parts.items()})
        return total, logs
