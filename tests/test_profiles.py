"""Profiles: the paper's recipe as DeiT's, every named model and dataset exists, and a run's
settings resolve in the documented order (option > dataset settings > recipe > spec)."""

from __future__ import annotations

import dataclasses

import pytest
import timm

import lifestudy  # noqa: F401  (registers the study's models)
from lifestudy.data import DATASETS, get_spec
from lifestudy.engine import TrainConfig, resolve
from lifestudy.errors import ConfigError
from lifestudy.profiles import CPU_BUDGET, PROFILES, Profile, Recipe, get_profile


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
    models = [m for pair in p.classification.models for m in pair]
    models += [*p.sweep.models, p.distillation.teacher, *p.distillation.students]
    models += [*p.detection.backbones, *p.segmentation.backbones]
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
    assert cpu.seeds_for(cpu.detection) == [0, 1]
    # chapters 2-4: >= 3 seeds everywhere, >= 4 training sizes, schedule checks, a CNN reference
    for study in (cpu.classification, cpu.sweep, cpu.distillation):
        assert len(cpu.seeds_for(study)) >= 3
    assert len(cpu.sweep.subsets) >= 4 and cpu.schedule_check and cpu.classification.references
    assert cpu.distillation.teacher in cpu.classification.references  # the teacher is chapter 2's run
    assert sum(CPU_BUDGET.values()) <= 60


def test_resolution_order(tmp_path):
    spec = get_spec("fashion-mnist")
    cfg = resolve(TrainConfig(data="fashion-mnist", profile="cpu", out=str(tmp_path)), spec)
    cpu = PROFILES["cpu"]
    assert cfg.epochs == cpu.recipe.epochs and cfg.batch_size == cpu.recipe.batch_size
    assert cfg.subset == cpu.data["fashion-mnist"].subset  # the dataset's setting
    assert cfg.recipe["eval_subset"] == cpu.data["fashion-mnist"].recipe["eval_subset"]
    assert cfg.lr == pytest.approx(cpu.recipe.lr_base * cfg.batch_size / 512)
    assert cfg.img_size == (32, 32) and cfg.resolved
    assert set(cfg.recipe) == {f.name for f in dataclasses.fields(Recipe)}

    cfg = resolve(TrainConfig(data="fashion-mnist", profile="cpu", out=str(tmp_path), epochs=3, subset=0,
                              batch_size=128, img_size=(48, 48), recipe={"mixup": 0.5}), spec)
    assert (cfg.epochs, cfg.subset, cfg.batch_size, cfg.img_size) == (3, None, 128, (48, 48))
    assert cfg.recipe["mixup"] == 0.5
    assert cfg.recipe["warmup_epochs"] == 1  # capped at half a 3-epoch run (and recorded)
    assert cfg.lr == pytest.approx(cpu.recipe.lr_base * 128 / 512)

    with pytest.raises(ConfigError, match="unknown recipe field"):
        resolve(TrainConfig(out=str(tmp_path), recipe={"mixup_alpha": 1}), get_spec("digits"))
