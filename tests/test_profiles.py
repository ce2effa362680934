"""Profiles: the paper's recipe as DeiT's, every named model and dataset exists, and a run's
settings resolve in the documented order (option > dataset settings > recipe > spec)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import timm

import lifestudy  # noqa: F401  (registers the study's models)
from lifestudy.data import DATASETS, get_spec
from lifestudy.engine import TrainConfig, resolve
from lifestudy.errors import ConfigError
from lifestudy.profiles import CHAPTERS, CPU_BUDGET, PROFILES, DataSettings, Profile, Recipe, get_profile


def test_three_profiles_by_name():
    assert list(PROFILES) == ["smoke", "cpu", "paper"]
    assert get_profile("cpu") is PROFILES["cpu"]
    assert get_profile(PROFILES["paper"]) is PROFILES["paper"]
    with pytest.raises(ConfigError, match="smoke, cpu, paper"):
        get_profile("fast")


def test_paper_recipe_is_deits():
    """DeiT's main.py defaults, which the LIFE paper trains with."""
    r = PROFILES["paper"].recipe
    assert (r.epochs, r.lr_base, r.weight_decay, r.warmup_epochs, r.opt) == (300, 5e-4, 0.05, 5, "adamw")
    assert (r.label_smoothing, r.mixup, r.cutmix, r.reprob, r.drop_path) == (0.1, 0.8, 1.0, 0.25, 0.1)
    assert r.randaugment == "rand-m9-mstd0.5-inc1" and r.repeated_aug == 3


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_named_model_and_dataset_exists(name):
    p: Profile = PROFILES[name]
    models = [m for pair in p.classification.models for m in pair] + list(p.classification.references)
    models += [*p.sweep.models, p.distillation.teacher, *p.distillation.students]
    models += [*p.detection.backbones, *p.segmentation.backbones, *p.efficiency.models]
    models += [*p.module.head_models, *(m for pair in p.module.complexity_pairs for m in pair)]
    missing = [m for m in models if not timm.is_model(m)]
    assert not missing, missing
    datasets = [*p.classification.datasets, p.sweep.dataset, p.distillation.dataset,
                p.detection.dataset, p.segmentation.dataset, *p.data]
    assert not [d for d in datasets if d not in DATASETS]
    assert set(p.seeds) and all(isinstance(s, int) for s in p.seeds)
    for data, settings in p.data.items():
        p.recipe_for(data)  # its recipe changes name real fields


def test_cpu_profile_runs_three_seeds_and_fits_its_budget():
    assert len(PROFILES["cpu"].seeds) >= 3
    cpu = PROFILES["cpu"]
    assert cpu.seeds_for(cpu.classification) == list(cpu.seeds)  # names no seeds of its own
    assert len(cpu.seeds_for(cpu.detection)) >= 3  # issue 14: >= 3 seeds
    # chapters 2-4: >= 3 seeds everywhere, >= 4 training sizes, schedule checks, a CNN reference
    for study in (cpu.classification, cpu.sweep, cpu.distillation):
        assert len(cpu.seeds_for(study)) >= 3
    assert len(cpu.sweep.subsets) >= 4 and cpu.schedule_check and cpu.classification.references
    assert cpu.distillation.teacher in cpu.classification.references  # the teacher is chapter 2's run
    # the brief's limit for the whole book; its 60-minute target is not met by the schedules
    # that converge (CPU_BUDGET's note)
    assert sum(CPU_BUDGET.values()) <= 90
    # chapter 7 times LIFE where the book trains it: the classification chapters' input size,
    # with each training run's thread count (the notebook passes the profile's threads)
    trains_at = {cpu.settings_for(d).img_size for d in (*cpu.classification.datasets, cpu.locality.dataset)}
    assert {side for side, _ in trains_at} <= set(cpu.efficiency.bench.img_sides)


def test_resolution_order(tmp_path):
    spec = get_spec("fashion-mnist")
    cfg = resolve(TrainConfig(data="fashion-mnist", profile="cpu", out=str(tmp_path)), spec)
    cpu = PROFILES["cpu"]
    assert cfg.epochs == cpu.recipe.epochs and cfg.batch_size == cpu.recipe.batch_size
    assert cfg.subset == cpu.data["fashion-mnist"].subset  # the dataset's setting
    assert cfg.recipe["eval_subset"] == cpu.data["fashion-mnist"].recipe["eval_subset"]
    assert cfg.lr == pytest.approx(cpu.recipe.lr_base * cfg.batch_size / 512)
    assert cfg.img_size == cpu.data["fashion-mnist"].img_size and cfg.resolved  # the dataset's, not the spec's 28x28
    assert set(cfg.recipe) == {f.name for f in dataclasses.fields(Recipe)}

    cfg = resolve(TrainConfig(data="fashion-mnist", profile="cpu", out=str(tmp_path), epochs=3, subset=0,
                              batch_size=128, img_size=(48, 48), recipe={"mixup": 0.5}), spec)
    assert (cfg.epochs, cfg.subset, cfg.batch_size, cfg.img_size) == (3, None, 128, (48, 48))
    assert cfg.recipe["mixup"] == 0.5
    assert cfg.recipe["warmup_epochs"] == 1  # capped at half a 3-epoch run (and recorded)
    assert cfg.lr == pytest.approx(cpu.recipe.lr_base * 128 / 512)

    with pytest.raises(ConfigError, match="unknown recipe field"):
        resolve(TrainConfig(out=str(tmp_path), recipe={"mixup_alpha": 1}), get_spec("digits"))


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_chapter_has_its_study_and_the_dense_sizes_are_real(name):
    """Each chapter reads its plan from the profile; head sizes name DetrHeadConfig's fields."""
    from lifestudy.tasks.detection import head_sizes
    from lifestudy.tasks.segmentation import decoder_dim

    p = PROFILES[name]
    assert list(CHAPTERS) == list(CPU_BUDGET)
    for chapter, attr in CHAPTERS.items():
        assert (p.study(chapter) is None) == (attr is None)
    assert p.study("05_detection") is p.detection and p.study("08_rollout").n_images > 0
    for d in (p.detection.dataset, p.segmentation.dataset):
        options = p.settings_for(d).task_options()
        head_sizes(options), decoder_dim(options)  # unknown head fields would raise here
    bench = p.efficiency.bench
    assert bench.batch_size > 0 and bench.repeats > 0 and set(bench.img_sides) <= set(p.efficiency.img_sides)
    with pytest.raises(ConfigError, match="unknown chapter"):
        p.study("10_more")


def test_dense_settings_reach_the_run_as_options(tmp_path):
    """Canvases, head sizes and decoder width come from the profile's dataset settings (not
    from the profile's name deep down), and a run's own options change them key by key."""
    from lifestudy.tasks.detection import head_sizes

    smoke = PROFILES["smoke"]
    cfg = resolve(TrainConfig(task="detection", data="scenes-det", profile="smoke", out=str(tmp_path)))
    det = smoke.settings_for("scenes-det")
    assert (cfg.options["train_length"], cfg.options["test_length"]) == det.canvases
    assert head_sizes(cfg.options).dim == det.head_sizes["dim"]
    cfg = resolve(TrainConfig(task="detection", data="scenes-det", profile="smoke", out=str(tmp_path),
                              options={"head_sizes": {"enc_depth": 3}, "train_length": 4}))
    sizes = head_sizes(cfg.options)
    assert (sizes.enc_depth, sizes.dim, cfg.options["train_length"]) == (3, det.head_sizes["dim"], 4)
    seg = resolve(TrainConfig(task="segmentation", data="scenes-seg", profile="cpu", out=str(tmp_path)))
    assert seg.options["decoder_dim"] == PROFILES["cpu"].settings_for("scenes-seg").decoder_dim
    assert DataSettings().task_options() == {}
    assert DataSettings(options={"pretrained": True}).task_options({"a": 1}) == {"pretrained": True, "a": 1}


def test_dense_plans_thin_the_grid_as_their_fields_say():
    from lifestudy.profiles import DetectionStudy, SegmentationStudy

    full = DetectionStudy(dataset="scenes-det", backbones=("a", "b"))
    assert len(full.plan([0, 1, 2])) == 2 * 2 * 3 * 3  # inits x backbones x heads x seeds
    assert len(set(full.plan([0, 1, 2]))) == 36
    assert {r[0] for r in full.plan([0])} == {"random", "classification"}  # the paper's two by default
    thin = dataclasses.replace(full, inits=("random", "classification", "segmentation"), seed_heads=("encdec",),
                               init_heads={"random": ("encdec",), "segmentation": ("encdec-life", "encdec")},
                               init_seeds={"random": (1,)})
    rows = thin.plan([0, 1, 2])
    assert [r for r in rows if r[0] == "random"] == [("random", "a", "encdec", 1), ("random", "b", "encdec", 1)]
    cls = [r for r in rows if r[0] == "classification"]
    assert sorted(r[3] for r in cls if r[1:3] == ("a", "encdec")) == [0, 1, 2]
    assert [r[3] for r in cls if r[2] != "encdec"] == [0, 0, 0, 0]  # the other heads: the first seed
    seg = [r for r in rows if r[0] == "segmentation"]  # its heads in the study's order, encdec at every seed
    assert seg == [("segmentation", b, h, s) for b in "ab" for h, ss in (("encdec", (0, 1, 2)), ("encdec-life", (0,)))
                   for s in ss]
    # an init's seed the chapter does not run falls back to its first seed
    assert {r[3] for r in dataclasses.replace(thin, init_seeds={"random": (7,)}).plan([3, 4]) if r[0] == "random"} == {3}
    with pytest.raises(ConfigError, match="unknown init 'imagenet'"):
        DetectionStudy(dataset="scenes-det", backbones=("a",), inits=("random", "imagenet"))
    seg = SegmentationStudy(dataset="scenes-seg", backbones=("a", "b"), extra_img_sizes=((32, 64),), extra_size_seeds=1)
    rows = seg.plan([0, 1, 2], (32, 32))
    assert len(rows) == 2 * 3 + 2 and {r[2] for r in rows if r[0] == (32, 64)} == {0}
    assert len(dataclasses.replace(seg, extra_size_seeds=None).plan([0, 1, 2], (32, 32))) == 12
    cpu = PROFILES["cpu"]  # every cpu backbone: a row of each init, three segmentation-init seeds, every head
    rows = cpu.detection.plan(cpu.seeds_for(cpu.detection))
    for b in cpu.detection.backbones:
        assert len({r[3] for r in rows if r[:2] == ("segmentation", b)}) >= 3
        assert all(any(r[:2] == (init, b) for r in rows) for init in cpu.detection.inits)
        assert {r[2] for r in rows if r[:2] == ("segmentation", b)} == set(cpu.detection.heads)


def test_scene_settings_reach_the_drawn_canvases(tmp_path):
    """A profile's ``scene`` (the generator's item sizes, ...) is what the run's scenes are
    drawn with; a run's own ``data_options`` change it key by key; a bad value fails early."""
    from lifestudy.data import build_dataset
    from lifestudy.dense.transforms import scene_options

    settings = DataSettings(img_size=(32, 32), scene={"item_size": (14, 20)})
    assert settings.task_options()["data_options"] == {"item_size": (14, 20)}
    both = settings.task_options({"data_options": {"source": "digits"}})["data_options"]
    assert both == {"item_size": (14, 20), "source": "digits"}
    opts = scene_options("scenes-seg", (32, 32), {"data_options": both, "train_length": 3}, "train")
    ds = build_dataset("scenes-seg", "train", root=tmp_path, cache=False, **opts)
    assert ds.cfg.item_size == (14, 20) and ds.cfg.size == (32, 32)
    sides = [max(b[2] - b[0], b[3] - b[1]) for i in range(3) for b in ds.render(i)["boxes"]]
    assert sides and max(sides) <= 20  # visible boxes are never larger than the drawn item
    for name in PROFILES:  # every profile's scenes are drawable at its input size
        for d in ("scenes-det", "scenes-seg"):
            s = PROFILES[name].settings_for(d)
            if s.scene:
                size = s.img_size or (64, 64)
                build_dataset(d, "train", root=tmp_path, cache=False,
                              **{**scene_options(d, size, s.task_options(), "train"), "source": "digits", "length": 1})
    with pytest.raises(ConfigError, match="item_size"):
        build_dataset("scenes-seg", "train", root=tmp_path, cache=False, size=(32, 32), item_size=(14, 40),
                      source="digits", length=1)


def test_chapter_setup_is_one_call(tmp_path):
    from lifestudy import chapters

    chap = chapters.setup("05_detection", "cpu")
    cpu = PROFILES["cpu"]
    assert chap.study is cpu.detection and chap.seeds == list(cpu.detection.seeds)
    assert chapters.setup("07_efficiency", "cpu").seeds == [0]  # the study's own seeds
    assert chap.out_dir == Path("runs") / "cpu" / "05_detection" and chap.device == "cpu"
    assert chapters.setup("03_data_size", "cpu").seeds == list(cpu.seeds)  # names none: the profile's
    chap = chapters.setup("02_classification", "smoke", seeds=[4, 5], device="auto", out_dir=tmp_path,
                          data_root=tmp_path / "data", reuse_runs=True)
    assert chap.seeds == [4, 5] and chap.out_dir == tmp_path and chap.torch_device in ("cpu", "cuda:0")
    cfg = chap.config("classification", "digits", "deit_test_patch4_32", 4, out=("digits", "m", "seed4"))
    assert (cfg.profile, cfg.root, cfg.device, cfg.quiet) == ("smoke", str(tmp_path / "data"), "auto", True)
    assert cfg.out == str(tmp_path / "digits" / "m" / "seed4")
    assert "profile `smoke`" in chap.banner().data and "seeds 4, 5" in chap.banner().data
    assert chap.caption("Accuracy") == "Accuracy (profile smoke, seeds 4, 5)"
    assert chapters.setup("09_results", "paper").study is None
    assert chapters.setup("01_life_module", "cpu", device="cuda").device == "cpu"  # counts on the CPU
    with pytest.raises(ConfigError, match="unknown chapter"):
        chapters.setup("10_more", "cpu")


def test_detection_backbone_inits_read_their_chapters_runs_or_train_them_here(tmp_path):
    """Chapter 5's pretrained rows start from chapter 2's classifier and chapter 6's
    segmenter (seed 0, as those chapters train them) when their runs are finished beside
    chapter 5's run folder, else from runs trained under chapter 5's own folder."""
    from lifestudy import chapters
    from lifestudy.engine.loop import RECORD

    chap = chapters.setup("05_detection", "cpu", out_dir=tmp_path / "05_detection", data_root=tmp_path / "data")
    backbones = chap.study.backbones
    inits = chapters.backbone_inits(chap)
    assert set(inits) == {"classification", "segmentation"}  # "random" needs no run
    for init, (folder, configs) in inits.items():  # nothing has run: trained here
        assert folder == tmp_path / "05_detection" / f"{init}_init" and list(configs) == list(backbones)
    seg = inits["segmentation"][1][backbones[1]]
    six = chapters.setup("06_segmentation", "cpu", data_root=tmp_path / "data")
    assert seg == six.config("segmentation", "scenes-seg", backbones[1], 0, img_size=(32, 32), out=(seg.out,))
    assert inits["classification"][1][backbones[0]].data == "fashion-mnist"
    for b in backbones:  # chapter 6 has run: its runs are the init
        (tmp_path / "06_segmentation" / "32x32" / b / "seed0").mkdir(parents=True)
        (tmp_path / "06_segmentation" / "32x32" / b / "seed0" / RECORD).write_text("{}")
    inits = chapters.backbone_inits(chap)
    assert inits["segmentation"][0] == tmp_path / "06_segmentation"
    assert inits["segmentation"][1][backbones[0]].out == str(tmp_path / "06_segmentation" / "32x32" / backbones[0] / "seed0")
    assert inits["classification"][0] == tmp_path / "05_detection" / "classification_init"  # chapter 2 has not
    given = chapters.backbone_inits(chap, classification_dir=tmp_path / "mine")["classification"]
    assert given[1][backbones[0]].out == str(tmp_path / "mine" / "fashion-mnist" / backbones[0] / "seed0")
    random_only = chapters.setup("05_detection", dataclasses.replace(PROFILES["cpu"], detection=dataclasses.replace(
        PROFILES["cpu"].detection, inits=("random",))))
    assert chapters.backbone_inits(random_only) == {}
