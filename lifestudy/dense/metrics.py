"""Detection and segmentation metrics, through torchmetrics.

Detection (:class:`DetectionMetrics`):

- ``map`` — COCO-style mAP, averaged over IoU 0.50:0.05:0.95, and ``map_50`` — VOC-style
  mAP at IoU 0.5 (both from ``torchmetrics.detection.MeanAveragePrecision``, pycocotools
  backend; 101-point interpolated precision, as COCO does — VOC2007's 11-point rule
  differs slightly). VOC "difficult" objects are passed as COCO ``iscrowd``, so
  detecting them is neither rewarded nor punished, as in VOC's own evaluation.
- ``f1`` — F1 at IoU 0.5 with the **score-threshold rule**: a detection counts only when
  its score (the query's best real-class probability) is at least ``score_threshold``
  (0.5 by default: the query is then more sure of that class than of all others,
  "no object" included). Kept detections of an image are matched greedily, highest score
  first, to the unmatched ground-truth object of the same class with the largest IoU,
  which must be >= 0.5 (VOC's rule); matched ones are true positives, the rest false
  positives, unmatched objects false negatives, summed over the dataset:
  ``F1 = 2 TP / (2 TP + FP + FN)``. Difficult objects are left out of FN, and a detection
  matched to one is left out of FP.
- ``map_50_agnostic`` — mAP@0.5 with every class label set to one class: how well the
  detector finds objects at all, whatever it calls them (same scores and boxes). Where
  class-aware mAP is near zero, it tells localisation from classification.

Segmentation (:class:`SegmentationMetrics`): per-class IoU over the whole dataset from
``torchmetrics.classification.MulticlassJaccardIndex`` (``ignore_index=255``), ``miou`` as
the mean over the classes present in the ground truth or the predictions (a class absent
from both has no IoU and is left out, as mmsegmentation does), and pixel accuracy.
All values are percentages, as the paper reports them.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torchvision.ops import box_iou

__all__ = ["DetectionMetrics", "detection_counts", "SegmentationMetrics"]


def _plain(t: torch.Tensor) -> torch.Tensor:
    """Drop tv_tensors subclasses (BoundingBoxes, Mask) so torchmetrics sees plain tensors."""
    return t.as_subclass(torch.Tensor) if isinstance(t, torch.Tensor) else torch.as_tensor(t)


def detection_counts(pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                     score_threshold: float = 0.5, iou_threshold: float = 0.5) -> tuple[int, int, int]:
    """``(TP, FP, FN)`` of one image under the rule in the module docstring.

    Args:
        pred: ``boxes`` (n, 4) XYXY, ``scores`` (n,), ``labels`` (n,).
        target: ``boxes`` (m, 4) XYXY, ``labels`` (m,), optional ``difficult`` (m,) bool.
        score_threshold: detections below it are dropped.
        iou_threshold: least IoU for a match.
    """
    keep = pred["scores"] >= score_threshold
    boxes, scores, labels = (_plain(pred[k])[keep] for k in ("boxes", "scores", "labels"))
    gt_boxes, gt_labels = _plain(target["boxes"]).float(), _plain(target["labels"])
    difficult = _plain(target.get("difficult", torch.zeros(len(gt_labels), dtype=torch.bool))).bool()
    order = scores.argsort(descending=True)
    iou = box_iou(boxes.float(), gt_boxes) if len(boxes) and len(gt_boxes) else None
    taken = torch.zeros(len(gt_labels), dtype=torch.bool)
    tp = fp = 0
    for i in order.tolist():
        if iou is None:
            fp += 1
            continue
        cand = iou[i].clone()
        cand[(gt_labels != labels[i]) | taken] = -1
        j = int(cand.argmax())
        if cand[j] >= iou_threshold:
            taken[j] = True
            if not difficult[j]:
                tp += 1
        else:
            fp += 1
    fn = int((~taken & ~difficult).sum())
    return tp, fp, fn


class DetectionMetrics(nn.Module):
    """Accumulates detections over a dataset; ``compute()`` gives ``map``, ``map_50``,
    ``map_75``, ``map_50_agnostic``, ``f1``, ``precision``, ``recall`` (percent) and ``map_per_class``.

    Args:
        num_classes: object classes (for the per-class list).
        score_threshold: the F1 rule's threshold (module docstring).
        class_metrics: also compute per-class AP (slower).
    """

    def __init__(self, num_classes: int, score_threshold: float = 0.5, class_metrics: bool = True):
        super().__init__()
        from torchmetrics.detection import MeanAveragePrecision

        self.num_classes = num_classes
        self.score_threshold = score_threshold
        self.map = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=class_metrics)
        self.agnostic = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", iou_thresholds=[0.5])
        self.counts = [0, 0, 0]

    def update(self, preds: Sequence[dict[str, torch.Tensor]], targets: Sequence[dict[str, torch.Tensor]]) -> None:
        """Args:
            preds: per image ``boxes`` XYXY pixels, ``scores``, ``labels``.
            targets: per image ``boxes`` XYXY pixels, ``labels``, optional ``difficult``.
        """
        p_list, t_list = [], []
        for p, t in zip(preds, targets):
            p = {k: _plain(p[k]).detach().cpu() for k in ("boxes", "scores", "labels")}
            t = {k: _plain(v).detach().cpu() for k, v in t.items() if k in ("boxes", "labels", "difficult")}
            for i, c in enumerate(detection_counts(p, t, self.score_threshold)):
                self.counts[i] += c
            entry = {"boxes": t["boxes"].float(), "labels": t["labels"].long()}
            if "difficult" in t:
                entry["iscrowd"] = t["difficult"].long()
            p_list.append({"boxes": p["boxes"].float(), "scores": p["scores"].float(), "labels": p["labels"].long()})
            t_list.append(entry)
        self.map.update(p_list, t_list)
        self.agnostic.update([{**p, "labels": torch.zeros_like(p["labels"])} for p in p_list],
                             [{**t, "labels": torch.zeros_like(t["labels"])} for t in t_list])

    def compute(self) -> dict[str, Any]:
        res = self.map.compute()
        tp, fp, fn = self.counts
        out: dict[str, Any] = {
            "map": 100 * float(res["map"]),
            "map_50": 100 * float(res["map_50"]),
            "map_75": 100 * float(res["map_75"]),
            "map_50_agnostic": 100 * float(self.agnostic.compute()["map"]),
            "f1": 100 * 2 * tp / max(2 * tp + fp + fn, 1),
            "precision": 100 * tp / max(tp + fp, 1),
            "recall": 100 * tp / max(tp + fn, 1),
        }
        if "map_per_class" in res and res["map_per_class"].numel() > 1:
            per = torch.full((self.num_classes,), float("nan"))
            per[res["classes"].long()] = res["map_per_class"].float()
            out["map_per_class"] = [100 * float(v) for v in per]
        return out

    def reset(self) -> None:
        self.map.reset()
        self.agnostic.reset()
        self.counts = [0, 0, 0]


class SegmentationMetrics(nn.Module):
    """Accumulates per-pixel predictions; ``compute()`` gives ``miou``, ``iou_per_class``
    and ``pixel_acc`` (percent), ignoring ``ignore_index`` pixels.

    Args:
        num_classes: classes K (background included where the dataset has one).
        ignore_index: label of pixels to ignore (255: VOC borders, Cityscapes void).
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255):
        super().__init__()
        from torchmetrics.classification import MulticlassConfusionMatrix

        self.num_classes = num_classes
        self.ignore_index = ignore_index
        # The confusion matrix gives IoU per class (what MulticlassJaccardIndex computes
        # from the same matrix), pixel accuracy, and which classes occur at all.
        self.confmat = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index)

    def update(self, logits_or_labels: torch.Tensor, target: torch.Tensor) -> None:
        """Args:
            logits_or_labels: (B, K, H, W) logits or (B, H, W) predicted labels.
            target: (B, H, W) labels, ``ignore_index`` where unlabelled.
        """
        pred = logits_or_labels
        if pred.ndim == 4:
            pred = pred.argmax(1)
        self.confmat.update(_plain(pred).detach().cpu(), _plain(target).detach().long().cpu())

    def compute(self) -> dict[str, Any]:
        cm = self.confmat.compute().double()
        inter = cm.diag()
        union = cm.sum(0) + cm.sum(1) - inter
        iou = inter / union  # nan where a class is in neither prediction nor ground truth
        present = union > 0
        return {
            "miou": 100 * float(iou[present].mean()) if present.any() else 0.0,
            "iou_per_class": [100 * float(v) for v in iou],
            "pixel_acc": 100 * float(inter.sum() / cm.sum().clamp(min=1)),
        }

    def reset(self) -> None:
        self.confmat.reset()
