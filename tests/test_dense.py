"""Dense heads: matching and losses on hand-made cases, metrics with known answers, the
three detection heads and the segmenter on tiny backbones (rectangular inputs included),
and backbone initialisation from a classification checkpoint."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_convert

import lifestudy  # noqa: F401  (registers the tiny test backbones)
from lifestudy.dense import (
    HEADS,
    DetectionMetrics,
    LossWeights,
    SegmentationMetrics,
    SetCriterion,
    build_detector,
    build_segmenter,
    detection_counts,
    hungarian_match,
    normalize_boxes,
    postprocess,
)
from lifestudy.dense.detr import box_attention_prior, grid_anchors
from lifestudy.errors import ConfigError, LifestudyError
from lifestudy.life import LIFE

torch.set_num_threads(1)

BACKBONES = ["deit_test_patch4_32", "deit_test_patch4_32_life"]
TINY_HEAD = dict(dim=48, num_heads=3, enc_depth=1, dec_depth=1, mlp_ratio=2.0, num_queries=6)


def _targets():
    """Two images: three objects, and none."""
    return [
        {"labels": torch.tensor([2, 0, 1]),
         "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4], [0.5, 0.5, 0.9, 0.9]])},
        {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)},
    ]


def _perfect_outputs(targets, num_queries=5, num_classes=3, perm=None):
    """Logits/boxes where queries ``perm[j]`` hold object j exactly, the rest say "no object"."""
    B = len(targets)
    logits = torch.full((B, num_queries, num_classes + 1), -10.0)
    logits[..., -1] = 10.0
    boxes = torch.full((B, num_queries, 4), 0.5)
    for b, t in enumerate(targets):
        idx = perm[b] if perm is not None else torch.arange(len(t["labels"]))
        for j, q in enumerate(idx.tolist()):
            logits[b, q] = -10.0
            logits[b, q, t["labels"][j]] = 10.0
            boxes[b, q] = t["boxes"][j]
    return {"pred_logits": logits, "pred_boxes": boxes}


# ---------------------------------------------------------------------------- matching
def test_permuted_predictions_match_back():
    targets = _targets()
    perm = [torch.tensor([4, 0, 2]), torch.zeros(0, dtype=torch.int64)]
    out = _perfect_outputs(targets, perm=perm)
    matches = hungarian_match(out["pred_logits"], out["pred_boxes"], targets)
    rows, cols = matches[0]
    assert dict(zip(cols.tolist(), rows.tolist())) == {0: 4, 1: 0, 2: 2}
    assert len(matches[1][0]) == 0


def test_perfect_prediction_has_zero_box_loss():
    targets = _targets()
    out = _perfect_outputs(targets, perm=[torch.tensor([1, 3, 0]), torch.zeros(0, dtype=torch.int64)])
    loss, logs = SetCriterion(num_classes=3)(out, targets)
    assert logs["loss_l1"] == pytest.approx(0.0, abs=1e-6)
    assert logs["loss_giou"] == pytest.approx(0.0, abs=1e-5)
    assert logs["loss_ce"] < 1e-3
    # a wrong box costs L1 and GIoU
    out["pred_boxes"][0, 1] = torch.tensor([0.6, 0.6, 0.2, 0.2])
    _, logs = SetCriterion(num_classes=3)(out, targets)
    assert logs["loss_l1"] > 0.1 and logs["loss_giou"] > 0.1


def test_criterion_counts_aux_outputs_and_backpropagates():
    targets = _targets()
    logits = torch.randn(2, 5, 4, requires_grad=True)
    boxes = torch.rand(2, 5, 4).clamp(0.1, 0.9).requires_grad_()
    out = {"pred_logits": logits, "pred_boxes": boxes}
    crit = SetCriterion(num_classes=3)
    single, _ = crit(out, targets)
    with_aux, _ = crit({**out, "aux_outputs": [dict(out)]}, targets)
    assert with_aux.item() == pytest.approx(2 * single.item(), rel=1e-5)
    with_aux.backward()
    assert logits.grad.abs().sum() > 0 and boxes.grad.abs().sum() > 0


def test_normalize_boxes_and_postprocess_invert_each_other():
    boxes = torch.tensor([[4.0, 8.0, 20.0, 16.0]])
    norm = normalize_boxes(boxes, (32, 64))
    assert torch.allclose(norm, torch.tensor([[12 / 64, 12 / 32, 16 / 64, 8 / 32]]))
    logits = torch.tensor([[[0.0, 5.0, 0.0, 0.0]]])
    det = postprocess({"pred_logits": logits, "pred_boxes": norm[None]}, (32, 64))[0]
    assert torch.allclose(det["boxes"], boxes) and det["labels"].tolist() == [1]


def test_focal_loss_and_cost_reward_the_right_class():
    """Deformable DETR's focal terms: a perfect sigmoid prediction costs almost nothing,
    the matching follows the class when boxes tie, and the loss has gradients."""
    targets = _targets()
    out = _perfect_outputs(targets, perm=[torch.tensor([4, 0, 2]), torch.zeros(0, dtype=torch.int64)])
    out["pred_logits"] = out["pred_logits"][..., :-1]  # no "no object" logit with focal loss
    weights = LossWeights(focal=True, ce=2.0)
    rows, cols = hungarian_match(out["pred_logits"], out["pred_boxes"], targets, weights)[0]
    assert dict(zip(cols.tolist(), rows.tolist())) == {0: 4, 1: 0, 2: 2}
    _, logs = SetCriterion(3, weights)(out, targets)
    assert logs["loss_ce"] < 1e-3 and logs["loss_l1"] < 1e-6
    # the same boxes, classes swapped between queries 4 and 0: the class cost decides
    swapped = {k: v.clone() for k, v in out.items()}
    swapped["pred_boxes"][0, [0, 4]] = 0.5
    rows, cols = hungarian_match(swapped["pred_logits"], swapped["pred_boxes"], targets, weights)[0]
    assert dict(zip(cols.tolist(), rows.tolist()))[0] == 4
    logits = torch.zeros(2, 5, 3, requires_grad=True)
    loss, logs = SetCriterion(3, weights)({"pred_logits": logits, "pred_boxes": torch.rand(2, 5, 4) * 0.5 + 0.25},
                                          targets)
    loss.backward()
    assert logs["loss_ce"] > 0.1 and logits.grad.abs().sum() > 0


def test_query_groups_match_each_object_once_per_group():
    targets = _targets()
    out = _perfect_outputs(targets, num_queries=5, perm=[torch.tensor([4, 0, 2]), torch.zeros(0, dtype=torch.int64)])
    grouped = {k: torch.cat([v, v.flip(1)], dim=1) for k, v in out.items()}  # two groups of 5
    rows, cols = hungarian_match(grouped["pred_logits"], grouped["pred_boxes"], targets, groups=2)[0]
    assert sorted(cols.tolist()) == [0, 0, 1, 1, 2, 2]
    assert dict(zip(cols[:3].tolist(), rows[:3].tolist())) == {0: 4, 1: 0, 2: 2}
    assert dict(zip(cols[3:].tolist(), rows[3:].tolist())) == {0: 5, 1: 9, 2: 7}
    # two perfect groups cost what one does: the losses are averaged over the groups
    one, _ = SetCriterion(3)(out, targets)
    two, _ = SetCriterion(3)({**grouped, "query_groups": 2}, targets)
    assert two.item() == pytest.approx(one.item(), rel=1e-4)


def test_head_aids_shapes_in_train_and_eval():
    aids = dict(TINY_HEAD, focal=True, box_refine=True, spatial_prior=True, query_groups=3)
    det = build_detector("deit_test_patch4_32", num_classes=3, img_size=32, **aids)
    out = det(torch.randn(2, 3, 32, 32))
    assert out["pred_logits"].shape == (2, 18, 3) and out["query_groups"] == 3  # no "no object" logit
    assert len(out["aux_outputs"]) == TINY_HEAD["dec_depth"] - 1
    loss, _ = SetCriterion(3, LossWeights.from_head(det.head.config))(out, _targets())
    loss.backward()
    assert det.head.anchors.grad.abs().sum() > 0
    det.eval()
    with torch.no_grad():
        out = det(torch.randn(2, 3, 32, 32))
    assert out["pred_boxes"].shape == (2, 6, 4) and out["query_groups"] == 1  # inference: one group
    # before training, every query's box is its grid anchor
    fresh = build_detector("deit_test_patch4_32", num_classes=3, img_size=32, **dict(TINY_HEAD, box_refine=True))
    fresh.eval()
    with torch.no_grad():
        boxes = fresh(torch.randn(1, 3, 32, 32))["pred_boxes"][0]
    assert torch.allclose(boxes, grid_anchors(6), atol=1e-5)
    with pytest.raises(ConfigError, match="box_refine"):
        build_detector("deit_test_patch4_32", num_classes=3, img_size=32, **dict(TINY_HEAD, spatial_prior=True))


def test_denoising_queries_start_at_the_objects_and_leave_the_matching_queries_alone():
    targets = _targets()  # three objects, and none
    torch.manual_seed(0)
    det = build_detector("deit_test_patch4_32", num_classes=3, img_size=32,
                         **dict(TINY_HEAD, box_refine=True, dec_depth=2, dn_groups=2, dn_box_noise=0.0))
    images = torch.randn(2, 3, 32, 32)
    plain = det(images)  # no targets: no denoising part
    out = det(images, targets)
    assert "dn" not in plain and torch.equal(out["pred_logits"], plain["pred_logits"])
    dn = out["dn"]
    assert dn["valid"].tolist() == [[True] * 3 * 2, [False] * 3 * 2]  # 2 groups x 3 objects, padding
    assert dn["labels"][0].tolist() == [2, 0, 1, 2, 0, 1]
    # with no noise, an untrained head (zero box offsets) gives back the objects' boxes exactly
    assert torch.allclose(dn["pred_boxes"][0][0], targets[0]["boxes"].repeat(2, 1), atol=1e-5)
    weights = LossWeights.from_head(det.head.config)
    with_dn, logs = SetCriterion(3, weights)(out, targets)
    without, _ = SetCriterion(3, weights)(plain, targets)
    assert logs["dn_loss_l1"] < 1e-5 and logs["dn_loss_ce"] > 0.5  # boxes right, classes not yet learned
    assert with_dn > without
    with_dn.backward()
    assert det.head.class_embed.weight.grad.abs().sum() > 0
    # noise moves centres by at most noise x half the size, sides by at most 1 +- noise
    from lifestudy.dense.detr import denoising_queries

    ref = denoising_queries(targets, 50, 0.4, torch.device("cpu"))["ref"][0].view(50, 3, 4)
    box = targets[0]["boxes"]
    assert ((ref[..., :2] - box[:, :2]).abs() <= 0.2 * box[:, 2:] + 1e-6).all()
    assert ((ref[..., 2:] / box[:, 2:] - 1).abs() <= 0.4 + 1e-5).all()
    assert (ref[..., :2] - box[:, :2]).abs().max() > 0.1 * box[:, 2:].min()  # it does move them
    det.eval()
    with torch.no_grad():
        assert "dn" not in det(images, targets)  # inference: unchanged
    with pytest.raises(ConfigError, match="box_refine"):
        build_detector("deit_test_patch4_32", num_classes=3, img_size=32, **dict(TINY_HEAD, dn_groups=1))


def test_box_attention_prior_peaks_inside_the_box():
    boxes = torch.tensor([[[0.125, 0.875, 0.25, 0.25], [0.9, 0.1, 1.0, 1.0]]])
    bias = box_attention_prior(boxes, 4, 4).view(2, 4, 4)  # (query, row, col)
    assert bias[0].argmax() == 3 * 4 + 0 and bias[0, 3, 0] == 0  # the bottom-left cell, its centre
    assert bias[0, 3, 0] > bias[0, 0, 3] + 5  # far cells are all but masked out
    assert bias[1].max() - bias[1].min() < bias[0].max() - bias[0].min()  # a big box spreads wide


def test_tiny_detector_fits_a_handful_of_canvases():
    """The set loss, the matching and the head together can fit four generated canvases
    almost perfectly in a few dozen full-batch steps (with the cpu profile's aids): a
    detector that cannot do this has a bug, whatever it does at scale."""
    from lifestudy.data import build_dataset, get_spec
    from lifestudy.dense.transforms import collate_dense, dense_transform
    from lifestudy.dense import DetrHeadConfig
    from lifestudy.profiles import get_profile

    spec = get_spec("scenes-det")
    ds = build_dataset("scenes-det", "train", transform=dense_transform(spec, (32, 32), train=False, resize=False),
                       length=4, size=(32, 32), item_size=(12, 32), source="digits")
    images, targets = collate_dense([ds[i] for i in range(4)])
    norm = [{"labels": t["labels"], "boxes": normalize_boxes(t["boxes"], (32, 32))} for t in targets]
    torch.manual_seed(0)
    cpu = DetrHeadConfig().replace(**get_profile("cpu").settings_for("scenes-det").head_sizes)
    det = build_detector("deit_test_patch4_32", num_classes=10, img_size=32,
                         sizes=cpu.replace(dim=48, enc_depth=1, num_queries=8, query_groups=1))
    criterion = SetCriterion(10, LossWeights.from_head(det.head.config))
    opt = torch.optim.AdamW(det.parameters(), lr=2e-3, weight_decay=0.0)
    for _ in range(100):
        loss, _ = criterion(det(images), norm)
        opt.zero_grad()
        loss.backward()
        opt.step()
    det.eval()
    metric = DetectionMetrics(10, class_metrics=False)
    metric.update(det.predict(images), targets)
    result = metric.compute()
    assert result["map_50"] >= 90 and result["f1"] >= 80, result


# ----------------------------------------------------------------------------- metrics
def _two_boxes_found(labels: list[int]) -> dict:
    """DetectionMetrics of both ground-truth boxes predicted exactly, with ``labels``."""
    gt = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 30.0]]), "labels": torch.tensor([0, 1])}]
    pred = [{"boxes": gt[0]["boxes"].clone(), "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor(labels)}]
    metric = DetectionMetrics(num_classes=2)
    metric.update(pred, gt)
    return metric.compute()


def test_detection_metrics_perfect_predictions():
    res = _two_boxes_found([0, 1])
    assert res["map"] == pytest.approx(100.0)
    assert res["map_50"] == pytest.approx(100.0)
    assert res["f1"] == pytest.approx(100.0)
    assert res["map_50_agnostic"] == pytest.approx(100.0)


def test_agnostic_map_counts_found_objects_with_wrong_classes():
    res = _two_boxes_found([1, 0])
    assert res["map_50"] == pytest.approx(0.0) and res["f1"] == 0.0
    assert res["map_50_agnostic"] == pytest.approx(100.0)  # both found, both misnamed


def test_f1_rule_known_answer():
    """One hit, one confident wrong class, one unsure hit below the threshold, one miss."""
    target = {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
              "labels": torch.tensor([0, 1])}
    pred = {"boxes": torch.tensor([[0.0, 0.0, 10.0, 9.0], [20.0, 20.0, 30.0, 30.0], [20.0, 20.0, 30.0, 30.0]]),
            "scores": torch.tensor([0.9, 0.7, 0.4]), "labels": torch.tensor([0, 0, 1])}
    assert detection_counts(pred, target) == (1, 1, 1)  # TP, FP, FN
    metric = DetectionMetrics(num_classes=2)
    metric.update([pred], [target])
    res = metric.compute()
    assert res["f1"] == pytest.approx(100 * 2 / 4)
    assert res["precision"] == pytest.approx(50.0) and res["recall"] == pytest.approx(50.0)
    # two detections of one object: the second is a false positive
    dup = {"boxes": target["boxes"][:1].repeat(2, 1), "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 0])}
    assert detection_counts(dup, target) == (1, 1, 1)


def test_difficult_objects_are_neither_missed_nor_hits():
    target = {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
              "labels": torch.tensor([0, 0]), "difficult": torch.tensor([False, True])}
    only_easy = {"boxes": target["boxes"][:1], "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}
    both = {"boxes": target["boxes"], "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 0])}
    assert detection_counts(only_easy, target) == (1, 0, 0)
    assert detection_counts(both, target) == (1, 0, 0)
    metric = DetectionMetrics(num_classes=1)
    metric.update([only_easy], [target])
    assert metric.compute()["map_50"] == pytest.approx(100.0)  # the difficult miss costs nothing


def test_segmentation_metrics_known_answer_and_ignore():
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 255]]])
    pred = torch.tensor([[[0, 1, 1, 1], [2, 2, 0, 0]]])  # the 255 pixels are ignored
    metric = SegmentationMetrics(num_classes=4)
    metric.update(pred, target)
    res = metric.compute()
    # class 0: inter 1, union 2; class 1: inter 2, union 3; class 2: 2/2; class 3 absent
    assert res["iou_per_class"][:3] == pytest.approx([50.0, 200 / 3, 100.0])
    assert res["miou"] == pytest.approx((50.0 + 200 / 3 + 100.0) / 3)
    assert res["pixel_acc"] == pytest.approx(100 * 5 / 6)


def test_segmentation_iou_agrees_with_torchmetrics_jaccard():
    from torchmetrics.classification import MulticlassJaccardIndex

    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (3, 16, 24), generator=gen)
    target[:, :2] = 255
    logits = torch.randn(3, 5, 16, 24, generator=gen)
    ours = SegmentationMetrics(num_classes=5)
    ours.update(logits, target)
    ref = MulticlassJaccardIndex(num_classes=5, ignore_index=255, average="none")
    ref.update(logits.argmax(1), target)
    assert ours.compute()["iou_per_class"] == pytest.approx((100 * ref.compute()).tolist(), rel=1e-5)


# ------------------------------------------------------------------------------- models
@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("head", list(HEADS))
def test_detector_heads_forward_backward_rectangular(backbone, head):
    det = build_detector(backbone, head=head, num_classes=3, img_size=(32, 64), **TINY_HEAD)
    images = torch.randn(2, 3, 32, 64)
    out = det(images)
    assert out["pred_logits"].shape == (2, 6, 4)
    assert out["pred_boxes"].shape == (2, 6, 4)
    assert ((out["pred_boxes"] >= 0) & (out["pred_boxes"] <= 1)).all()
    loss, logs = SetCriterion(3)(out, _targets())
    loss.backward()
    assert set(logs) == {"loss_ce", "loss_l1", "loss_giou"}
    assert det.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    assert det.head.encoder[0].attn.qkv.__class__ is (torch.nn.Linear if head == "encdec" else LIFE)
    # another size at run time (dynamic image size), portrait this time
    assert det(torch.randn(1, 3, 64, 32))["pred_boxes"].shape == (1, 6, 4)


def test_linear_control_differs_from_life_only_in_kernels():
    counts = {}
    for head in HEADS:
        det = build_detector("deit_test_patch4_32", head=head, num_classes=3, img_size=32, **TINY_HEAD)
        counts[head] = sum(p.numel() for p in det.head.parameters())
        qkv = det.head.encoder[0].attn.qkv
        if head != "encdec":
            assert qkv.kernel_sizes == HEADS[head]
    C, depth = TINY_HEAD["dim"], TINY_HEAD["enc_depth"]
    # depthwise 3x3 + 5x5 against 1x1 + 1x1 over C channels, per encoder layer
    assert counts["encdec-life"] - counts["encdec-linear"] == (9 + 25 - 2) * C * depth
    assert abs(counts["encdec-linear"] - counts["encdec"]) < C * depth


def test_encdec_life_is_local_and_linear_is_not():
    """Perturbing one grid cell changes the LIFE encoder's q of its neighbours only
    through the depthwise kernels; the 1x1 control leaves the neighbours untouched."""
    for head, expect_spread in (("encdec-life", True), ("encdec-linear", False)):
        det = build_detector("deit_test_patch4_32", head=head, num_classes=3, img_size=32, **TINY_HEAD)
        qkv = det.head.encoder[0].attn.qkv
        qkv.grid_size = (4, 4)
        x = torch.randn(1, 16, TINY_HEAD["dim"])
        x2 = x.clone()
        x2[0, 5] += 1.0  # cell (1, 1)
        changed = (qkv(x2) - qkv(x)).abs().sum(-1)[0] > 1e-6
        assert changed[5]
        assert bool(changed[6]) is expect_spread  # its right neighbour


@pytest.mark.parametrize("backbone", BACKBONES + ["deit_test_distilled_patch4_32_life"])
def test_segmenter_rectangular_input(backbone):
    seg = build_segmenter(backbone, num_classes=5, img_size=(32, 64), dim=16)
    images = torch.randn(2, 3, 32, 64)
    logits = seg(images)
    assert logits.shape == (2, 5, 32, 64)
    logits.logsumexp(1).mean().backward()
    assert seg.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    assert seg.backbone.num_prefix_tokens >= 1  # the timm ViT, prefix tokens inside
    assert seg(torch.randn(1, 3, 48, 32)).shape == (1, 5, 48, 32)


def test_indivisible_size_is_a_clear_error():
    seg = build_segmenter("deit_test_patch4_32", num_classes=3, img_size=32, dim=16)
    with pytest.raises(ConfigError, match="not divisible"):
        seg(torch.randn(1, 3, 30, 32))


def test_bad_names_are_clear_errors():
    with pytest.raises(ConfigError, match="encdec-life"):
        build_detector("deit_test_patch4_32", head="encdec-conv", num_classes=3, img_size=32)
    with pytest.raises(ConfigError, match="unknown backbone"):
        build_segmenter("no_such_vit", num_classes=3, img_size=32)
    with pytest.raises(ConfigError, match="num_querys"):
        build_detector("deit_test_patch4_32", num_classes=3, img_size=32, num_querys=5)


# ------------------------------------------------------------------------ initialisation
def test_init_from_classification_checkpoint(tmp_path):
    import timm

    clf = timm.create_model("deit_test_patch4_32_life", num_classes=10, img_size=32)
    torch.save({"model": clf.state_dict(), "config": {"model": "deit_test_patch4_32_life"}}, tmp_path / "checkpoint.pt")
    det = build_detector("deit_test_patch4_32_life", head="encdec", num_classes=3, img_size=64,
                         init=str(tmp_path), **TINY_HEAD)
    report = det.init_report
    assert report["resampled"] == ["pos_embed"]
    assert any(k.startswith("head") for k in report["skipped"])
    assert not [k for k in report["missing"] if k.startswith("blocks")]
    for name, value in clf.state_dict().items():
        if name.startswith("blocks"):
            assert torch.equal(det.backbone.state_dict()[name], value), name
    assert det.backbone.pos_embed.shape[1] == 1 + 16 * 16


def test_init_errors_name_the_fix(tmp_path):
    with pytest.raises(LifestudyError, match="checkpoint"):
        build_segmenter("deit_test_patch4_32", num_classes=3, img_size=32, init=str(tmp_path / "none"))
    torch.save({"model": {"other.weight": torch.zeros(3)}}, tmp_path / "bad.pt")
    with pytest.raises(LifestudyError, match="none of the weights"):
        build_segmenter("deit_test_patch4_32", num_classes=3, img_size=32, init=str(tmp_path / "bad.pt"))


# --------------------------------------------------------------------------- complexity
def test_complexity_of_heads_and_paper_rows():
    from lifestudy.dense.complexity import detector_complexity, segmenter_complexity

    rows = {head: detector_complexity("deit_test_patch4_32", head, num_classes=3, img_size=32, **TINY_HEAD)
            for head in HEADS}
    for r in rows.values():
        assert r["params_m"] == pytest.approx(r["backbone_params_m"] + r["head_params_m"])
        assert r["gmacs"] > r["backbone_gmacs"] > 0 and r["paper"] is None
    C, depth, grid = TINY_HEAD["dim"], TINY_HEAD["enc_depth"], 8 * 8
    # LIFE's depthwise convs: (9 + 25) MACs per channel per cell, against (1 + 1) for the control
    assert (rows["encdec-life"]["gmacs"] - rows["encdec-linear"]["gmacs"]) * 1e9 == pytest.approx(32 * C * grid * depth)
    seg = segmenter_complexity("deit_test_patch4_32", num_classes=4, img_size=(32, 64), dim=16)
    assert seg["img_size"] == [32, 64] and seg["head_params_m"] > 0
    paper_row = detector_complexity("deit_tiny_patch16_224", "encdec-life", num_classes=20, img_size=32,
                                    dim=48, num_heads=3, enc_depth=1, dec_depth=1, num_queries=4)["paper"]
    assert paper_row["label"] == "paper" and paper_row["params_m"] == 28.19


def test_paper_detection_table_has_every_row():
    from lifestudy import paper

    assert len(paper.DETECTION) == 6 * 3  # 6 (init, backbone) groups x 3 heads
    assert {(r["init"], r["needs_pretrained"]) for r in paper.DETECTION} == {("random", False), ("imagenet-1k", True)}
    life = paper.detection_rows("random", "DeiT-T-LIFE")
    assert life["encdec-life"]["map"] == 32.21 and life["encdec"]["f1"] == 37.49
    assert paper.detection_rows("imagenet-1k", "Swinv2-T-LIFE")["encdec-linear"]["map"] == 81.27
    assert set(paper.DETECTION_BACKBONES) == {r["backbone"] for r in paper.DETECTION}


def test_init_from_grey_classifier_into_rgb_backbone(tmp_path):
    import timm

    clf = timm.create_model("deit_test_patch4_32", num_classes=10, img_size=32, in_chans=1)
    torch.save({"model": clf.state_dict()}, tmp_path / "grey.pt")
    seg = build_segmenter("deit_test_patch4_32", num_classes=3, img_size=32, in_chans=3, dim=16,
                          init=str(tmp_path / "grey.pt"))
    assert "patch_embed.proj.weight" in seg.init_report["resampled"]
    grey = torch.rand(1, 1, 32, 32)
    seg.eval(), clf.eval()
    # a grey image copied to RGB gives the classifier's own patch embedding
    rgb_tokens = seg.backbone.patch_embed(grey.repeat(1, 3, 1, 1)).flatten(1, 2)  # NHWC: dynamic size
    assert torch.allclose(rgb_tokens, clf.patch_embed(grey), atol=1e-6)


def test_scene_options_draw_at_the_run_size():
    from lifestudy.dense.transforms import scene_options

    opts = scene_options("scenes-seg", (32, 64), {"train_length": 12}, "train")
    assert opts["size"] == (32, 64) and opts["length"] == 12
    assert max(opts["item_size"]) <= 32  # items fit the shorter side
    opts = scene_options("scenes-det", (64, 64), {"test_length": 7}, "test")
    assert opts == {"size": (64, 64), "length": 7}
    assert "length" not in scene_options("scenes-det", (64, 64), {}, "train")  # the scenes' own default
    assert scene_options("voc-det", (512, 512), {"train_length": 5}, "train") == {}
