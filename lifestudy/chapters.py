"""A chapter of the book, set up in one call: its profile, study, seeds, run folder and device.

Every chapter starts the same way: its parameters cell (papermill's), then ::

    chap = chapters.setup("05_detection", profile, seeds, device, out_dir,
                          data_root=data_root, reuse_runs=reuse_runs)
    chap.banner()

after which ``chap.study`` is what the profile plans for the chapter
(:meth:`lifestudy.profiles.Profile.study`), ``chap.seeds`` its seeds (the study's own,
else the profile's, unless the reader passed some), ``chap.out_dir`` its run folder
(``runs/<profile>/<chapter>`` unless passed) and ``chap.device`` the device asked for.
:meth:`Chapter.config` makes a run's :class:`~lifestudy.engine.TrainConfig` with the
chapter's profile, data root and device filled in; :meth:`Chapter.train` fetches the
datasets that are missing and trains (or reuses) the runs; :meth:`Chapter.records` reads
the records back for the tables; :meth:`Chapter.run_checked` trains (or reuses) runs with
their schedule checks; :meth:`Chapter.key_results` writes the chapter's findings for
chapter 9's scorecard and returns its "key results" box; :meth:`Chapter.minutes` is the
time since set-up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifestudy import data, report
from lifestudy.engine import TrainConfig
from lifestudy.engine.distributed import resolve_device
from lifestudy.engine.loop import RECORD
from lifestudy.engine.runs import doubled, records_frame, run_all, schedule_check
from lifestudy.errors import DatasetError
from lifestudy.profiles import DataSettings, Profile, get_profile
from lifestudy.records import display_path, read_json

__all__ = ["Chapter", "Trained", "setup", "ensure_data", "train_all", "backbone_inits", "segmentation_size"]


@dataclass(frozen=True)
class Trained:
    """What :meth:`Chapter.run_checked` returns: the runs' records (in the order of the
    configs), those of the schedule checks, and the check table (None: the profile checks
    no schedule)."""

    records: list[dict]
    twice: list[dict]
    check: Any = None

    def frame(self):
        """The runs as one DataFrame (:func:`lifestudy.engine.runs.records_frame`)."""
        return records_frame(self.records)

    def converged(self, *keys: str) -> dict:
        """``{(key values...): converged}`` from the check table (one key: its value alone);
        empty when no schedule was checked."""
        if self.check is None:
            return {}
        return {(tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]): bool(r["converged"])
                for _, r in self.check.iterrows()}

    def counts(self) -> str:
        """``"4 runs trained, 2 reused"``."""
        hows = [r.get("how", "trained") for r in self.records]
        return f"{hows.count('trained')} runs trained, {len(hows) - hows.count('trained')} reused"


@dataclass(frozen=True)
class Chapter:
    """What a chapter runs, and where (see the module docstring)."""

    name: str  # e.g. "05_detection"
    profile: Profile
    study: Any  # the profile's study for this chapter (None for 09_results)
    seeds: list[int]
    out_dir: Path
    device: str  # as asked: cpu | cuda | cuda:N | auto
    data_root: str | None = None  # None: $LIFESTUDY_DATA or <repo>/data
    reuse_runs: bool = False  # keep runs that already have a record instead of training again
    started: float = field(default_factory=time.perf_counter, compare=False)  # set-up time (perf_counter)

    def minutes(self) -> float:
        """Minutes since the chapter was set up (its running time, for the summary)."""
        return (time.perf_counter() - self.started) / 60

    @property
    def torch_device(self) -> str:
        """The device the chapter's own computations run on (``auto`` resolved)."""
        return str(resolve_device(self.device))

    @property
    def settings(self) -> DataSettings:
        """The profile's settings of the study's dataset (input size, canvases, head sizes...)."""
        return self.profile.settings_for(self.study.dataset)

    def banner(self, seeds: Sequence[int] | None = None) -> Any:
        """The line under the parameters: profile, seeds (default: the chapter's) and device."""
        return report.run_banner(self.profile, self.seeds if seeds is None else seeds, self.torch_device)

    def caption(self, text: str, seeds: Sequence[int] | None | bool = True) -> str:
        """A caption naming the profile and (by default) the chapter's seeds."""
        shown = self.seeds if seeds is True else (None if seeds is False else seeds)
        return report.caption(text, self.profile.name, shown)

    def path(self, *parts: Any) -> Path:
        """A folder under the chapter's run folder."""
        return self.out_dir.joinpath(*(str(p) for p in parts))

    def show(self, path: str | os.PathLike | None = None) -> str:
        """``path`` (default: the run folder) as the reader should see it."""
        return display_path(self.out_dir if path is None else path)

    def config(self, task: str, data: str, model: str, seed: int, out: Sequence[Any], **fields: Any) -> TrainConfig:
        """One run of this chapter: its profile, data root and device, quiet, in ``path(*out)``."""
        return TrainConfig(task=task, data=data, model=model, seed=seed, profile=self.profile.name,
                           root=self.data_root, device=self.device, quiet=True,
                           out=str(self.path(*out)), **fields)

    def train(self, configs: Iterable[TrainConfig], log=print) -> list[dict]:
        """Fetch the configs' datasets that are missing, then train (or, with ``reuse_runs``,
        read back) every run, the profile's ``jobs`` side by side (:func:`train_all`)."""
        configs = list(configs)
        ensure_data(dict.fromkeys(c.data for c in configs), self.data_root)
        return train_all(configs, reuse=self.reuse_runs, log=log, jobs=self.profile.jobs,
                         threads=self.profile.threads)

    def run_checked(self, configs: Iterable[TrainConfig], display=None) -> Trained:
        """Train (or reuse, from any chapter of the profile) every run and, when the profile
        checks schedules, the first seed's runs again at twice the schedule; shows the check
        table (or says that there is none) with ``display`` (default: IPython's)."""
        configs = list(configs)
        first = self.seeds[0]
        checks = [doubled(c) for c in configs if c.seed == first] if self.profile.schedule_check else []
        recs = run_all(configs + checks, share=[self.out_dir.parent], jobs=self.profile.jobs,
                       threads=self.profile.threads)
        main, twice = recs[:len(configs)], recs[len(configs):]
        check = (schedule_check(zip([r for c, r in zip(configs, main) if c.seed == first], twice), seeds=main)
                 if checks else None)
        if display is None:
            from IPython.display import display
        if check is not None:
            display(check.drop(columns=[c for c in ("subset",) if check[c].isna().all()]).round(2))
        else:
            print(f"The {self.profile.name} profile runs no schedule check (see lifestudy/profiles.py).")
        return Trained(main, twice, check)

    def key_results(self, findings: Iterable[Any], note: str = "") -> Any:
        """Write the chapter's findings (``findings.json`` in its run folder, read by chapter
        9's scorecard) and return its "key results" box (:func:`lifestudy.report.key_results`)."""
        findings = list(findings)
        report.write_findings(self.path(report.FINDINGS), findings, profile=self.profile.name, chapter=self.name)
        return report.key_results(findings, note=note)

    def records(self, kind: str | None = None, under: str | os.PathLike | None = None):
        """The records under the run folder (or ``under``) as a DataFrame, optionally one ``kind``."""
        return report.chapter_records(self.out_dir if under is None else under, kind)


def setup(name: str, profile: str | Profile, seeds: Sequence[int] | None = None, device: str = "cpu",
          out_dir: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None,
          reuse_runs: bool = False) -> Chapter:
    """The chapter ``name`` of the book in ``profile`` (a name or a :class:`Profile`).

    Args:
        name: the chapter, e.g. ``"05_detection"`` (a key of :data:`lifestudy.profiles.CHAPTERS`).
        profile: the profile.
        seeds: the reader's seeds; None: the study's own, else the profile's.
        device: where the chapter computes; a study that names its own device (chapter 1's
            counts and perturbations run on the CPU) keeps it.
        out_dir: the run folder; None: ``runs/<profile>/<name>``.
        data_root: the datasets' root; None: ``$LIFESTUDY_DATA`` or ``<repo>/data``.
        reuse_runs: keep runs that already have a record instead of training again.
    """
    prof = get_profile(profile)
    study = prof.study(name)
    seeds = list(seeds) if seeds is not None else prof.seeds_for(study)
    device = getattr(study, "device", device)  # a study that names its device computes there
    out = Path(out_dir) if out_dir is not None else Path("runs") / prof.name / name
    return Chapter(name=name, profile=prof, study=study, seeds=seeds, out_dir=out, device=device,
                   data_root=None if data_root is None else os.fspath(data_root), reuse_runs=reuse_runs)


def segmentation_size(prof: Profile) -> tuple[int, int]:
    """Chapter 6's main input size (its runs' folder ``<H>x<W>``): the profile's setting for
    its dataset, else the dataset's own."""
    seg = prof.segmentation
    return tuple(prof.settings_for(seg.dataset).img_size or data.get_spec(seg.dataset).input_size)


def backbone_inits(chap: Chapter, classification_dir: str | os.PathLike | None = None,
                   segmentation_dir: str | os.PathLike | None = None) -> dict[str, tuple[Path, dict[str, TrainConfig]]]:
    """The runs whose backbones start chapter 5's pretrained rows: for each init of its study
    but ``"random"`` (:data:`lifestudy.profiles.DETECTION_INITS`), ``(folder, {backbone:
    config})``, each config the seed-0 run of that backbone as its own chapter trains it.

    ``"classification"``: chapter 2's run on Fashion-MNIST (the profile's first
    classification dataset when it has no Fashion-MNIST), at ``<folder>/<dataset>/<model>/seed0``;
    ``"segmentation"``: chapter 6's run at its main input size, at
    ``<folder>/<H>x<W>/<model>/seed0``. ``folder`` is the one passed, else that chapter's run
    folder (beside ``chap``'s) when every backbone's run has finished there, else
    ``<chap's run folder>/<init>_init``, where they are trained (:func:`train_all` with
    ``reuse=True`` reads finished runs back, trains the others).
    """
    prof, study = chap.profile, chap.study
    cls_data = "fashion-mnist" if "fashion-mnist" in prof.classification.datasets else prof.classification.datasets[0]
    seg, seg_size = prof.segmentation, segmentation_size(prof)
    kinds = {  # init -> (its chapter, the folder under it, task, dataset, extra config fields, folder passed)
        "classification": ("02_classification", cls_data, "classification", cls_data, {}, classification_dir),
        "segmentation": ("06_segmentation", "x".join(map(str, seg_size)), "segmentation", seg.dataset,
                         {"img_size": seg_size}, segmentation_dir),
    }
    out = {}
    for init in study.inits:
        if init not in kinds:
            continue
        chapter, sub, task, dataset, fields, given = kinds[init]
        folder = Path(given) if given is not None else chap.out_dir.parent / chapter
        if given is None and not all((folder / sub / b / "seed0" / RECORD).exists() for b in study.backbones):
            folder = chap.path(f"{init}_init")
        out[init] = (folder, {
            b: TrainConfig(task=task, data=dataset, model=b, profile=prof.name, seed=0, root=chap.data_root,
                           device=chap.device, quiet=True, out=str(folder / sub / b / "seed0"), **fields)
            for b in study.backbones
        })
    return out


def ensure_data(names: Iterable[str], root: str | os.PathLike | None = None) -> dict[str, str]:
    """Check each dataset and fetch the ones that are missing (what ``make data`` does).

    Returns ``{name: one-line summary}``; raises :class:`lifestudy.errors.DatasetError`
    (with the expected layout and the fetch command) when a dataset can be neither found
    nor fetched.
    """
    found = {}
    for name in names:
        try:
            found[name] = data.check(name, root=root)
        except DatasetError:
            data.fetch(name, root=root)
            found[name] = data.check(name, root=root)
    return found


def train_all(configs: Iterable[TrainConfig], reuse: bool = False, log=print, jobs: int = 1,
              threads: int | None = None) -> list[dict]:
    """Train each config (:func:`run_all`: ``jobs`` runs side by side, ``threads`` torch threads
    each; on 2 cores two one-thread runs of these small models finish well before one two-thread
    run after another) and return the records, in the order of ``configs``.

    Args:
        configs: ``TrainConfig`` objects, each with its own ``out`` folder.
        reuse: return a run's existing ``record.json`` instead of training again (for
            re-executing a chapter by hand; ``make book`` re-runs everything it re-executes).
        log: where the one-line progress messages go.
    """
    configs = list(configs)
    done = {i: read_json(Path(c.out) / "record.json") for i, c in enumerate(configs)
            if reuse and (Path(c.out) / "record.json").exists()}
    for i in done:
        log(f"[{i + 1}/{len(configs)}] reused {configs[i].model} on {configs[i].data} seed {configs[i].seed} "
            f"-> {display_path(Path(configs[i].out) / 'record.json')}")
    trained = iter(run_all([c for i, c in enumerate(configs) if i not in done], jobs=jobs, threads=threads, log=log))
    return [done[i] if i in done else next(trained) for i in range(len(configs))]
