"""Many runs at once: shared when already done, concurrent when independent, checked for
convergence.

A chapter asks for a list of runs (``TrainConfig``). :func:`run_all` identifies each by
the hash of its resolved config (:func:`lifestudy.engine.loop.resolved_hash`, stored as
``config_hash`` in every record); a run finished before with the same hash, in its own
folder or anywhere under the ``share`` folders (the other chapters' runs), is not trained
again: its record is returned with ``reused_from`` naming where it lies, and a
``reused.json`` pointer is left in the folder the run would have had. Runs still to train
go to ``jobs`` worker processes of ``threads`` torch threads each (tiny models use two
cores better as two one-thread runs than as one two-thread run).

The schedule check (:func:`doubled`, :func:`schedule_check`): a schedule counts as
converged when the same run at twice the schedule (epochs, step floor and warm-up all
doubled) moves the headline metric by less than ``tolerance`` points.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from lifestudy import records, stats
from lifestudy.engine.config import TrainConfig, resolve

__all__ = ["run_all", "doubled", "schedule_check", "records_frame", "learning_curves", "REUSED",
           "CONVERGENCE_TOLERANCE", "check_summary"]

REUSED = "reused.json"
#: Points of top-1 within which a doubled schedule must stay for the schedule to count as converged.
CONVERGENCE_TOLERANCE = 2.0


def _init_worker(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # this process already ran parallel work: keep its interop pool
            pass
    os.environ.setdefault("LIFESTUDY_QUIET", "1")


def _train_one(cfg: TrainConfig) -> dict[str, Any]:
    from lifestudy.engine.checkpoint import CHECKPOINT
    from lifestudy.engine.loop import train

    out = Path(cfg.out)
    if (out / CHECKPOINT).exists() or (out / "config.json").exists():  # interrupted: continue it
        cfg = dataclasses.replace(cfg, resume=True)  # (exactly, on CPU; refused if settings differ)
    t0 = time.perf_counter()
    record = train(cfg)
    record["seconds"] = time.perf_counter() - t0
    return record


def _describe(cfg: TrainConfig) -> str:
    extra = f" subset {cfg.subset}" if cfg.subset else ""
    return f"{cfg.model} on {cfg.data}{extra} seed {cfg.seed}"


def _finished(folder: Path, digest: str) -> dict[str, Any] | None:
    path = folder / "record.json"
    if path.is_file():
        rec = records.read_json(path)
        if rec.get("config_hash") == digest:
            return rec
    return None


def run_all(configs: Iterable[TrainConfig], share: Sequence[str | os.PathLike] = (), jobs: int = 1,
            threads: int | None = None, log: Callable[[str], Any] | None = print) -> list[dict[str, Any]]:
    """Train every config, or reuse the finished run with the same resolved config.

    Args:
        configs: the runs, each with its own ``out`` folder.
        share: folders whose finished runs may be reused (e.g. ``runs/cpu``, every chapter's).
        jobs: worker processes training at the same time (1: in this process).
        threads: torch threads per worker (None: torch's default; set 1 with ``jobs=2`` on 2 cores).
        log: where the one-line messages go (None: silent).

    Returns:
        the records, in the order of ``configs``; each has ``how`` ("trained", "reused",
        "done before"), ``seconds`` (wall time of this call's training, 0 when reused) and,
        when reused, ``reused_from`` (the record's path).
    """
    configs = list(configs)
    say = log or (lambda _msg: None)
    from lifestudy.engine.loop import hash_of_resolved

    resolved = [resolve(cfg) for cfg in configs]  # once: for the runs' identities and their lengths
    digests = [hash_of_resolved(r) for r in resolved]
    results: list[dict[str, Any] | None] = [None] * len(configs)
    todo: dict[str, list[int]] = {}  # hash -> indices wanting that run (trained once)
    for i, (cfg, digest) in enumerate(zip(configs, digests)):
        own = _finished(Path(cfg.out), digest)
        if own is not None:
            results[i] = {**own, "how": "done before", "seconds": 0.0}
            continue
        found = records.find_run(share, digest) if share else None
        if found is None and digest in todo:
            todo[digest].append(i)
            continue
        if found is not None:
            rec = records.read_json(found)
            records.write_json_atomic(Path(cfg.out) / REUSED, {"reused_from": str(found), "config_hash": digest})
            results[i] = {**rec, "how": "reused", "reused_from": str(found), "seconds": 0.0}
            continue
        todo[digest] = [i]
    for i, rec in enumerate(results):
        if rec is not None:
            say(f"[{i + 1}/{len(configs)}] {rec['how']}: {_describe(configs[i])} "
                f"({records.display_path(rec.get('reused_from', configs[i].out))})")

    def _done(first: int, record: dict[str, Any]) -> None:
        for k, i in enumerate(todo[digests[first]]):
            if k == 0:
                results[i] = {**record, "how": "trained"}
                say(f"[{i + 1}/{len(configs)}] trained: {_describe(configs[i])} in {record['seconds']:.0f} s "
                    f"({record['metrics'].get(record['metrics'].get('headline', ''), float('nan')):.2f}) "
                    f"-> {records.display_path(configs[i].out)}")
            else:
                src = str(Path(configs[first].out) / "record.json")
                records.write_json_atomic(Path(configs[i].out) / REUSED,
                                          {"reused_from": src, "config_hash": digests[i]})
                results[i] = {**record, "how": "reused", "reused_from": src, "seconds": 0.0}

    queue = _Queue(resolved, [ids[0] for ids in todo.values()])

    def _finish(i: int, record: dict[str, Any]) -> None:
        queue.timed(i, record)
        _done(i, record)

    if jobs <= 1 or len(todo) <= 1:
        if threads:
            _init_worker(threads)
        while (i := queue.pop()) is not None:
            _finish(i, _train_one(configs[i]))
    else:
        import multiprocessing

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker, initargs=(threads,)) as pool:
            running: dict[Any, int] = {}

            def _start() -> None:
                i = queue.pop()
                if i is not None:
                    running[pool.submit(_train_one, configs[i])] = i

            for _ in range(jobs):
                _start()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    _finish(running.pop(fut), fut.result())
                    _start()
    return [r for r in results if r is not None]


class _Queue:
    """Which run to start next: the one expected to take longest, so that the workers end
    together rather than one of them alone on a long run. A run's expected time is its length
    (:func:`_length`) times the time per unit of length of the runs of the same kind (task,
    model, head, input size, batch) finished so far in this call; kinds not yet timed go
    first, the longest schedule first (a doubled schedule check before the runs it checks)."""

    def __init__(self, configs: Sequence[TrainConfig], pending: Iterable[int]) -> None:
        self.configs = configs  # resolved: the profile's schedule, input size and batch filled in
        self.length = {i: _length(configs[i]) for i in pending}
        self.pending = sorted(self.length, key=lambda i: -self.length[i])
        self.per_unit: dict[tuple, float] = {}

    @staticmethod
    def _kind(cfg: TrainConfig) -> tuple:
        return cfg.task, cfg.model, cfg.head, tuple(cfg.img_size or ()), cfg.batch_size

    def _expected(self, i: int) -> tuple[bool, float]:
        per_unit = self.per_unit.get(self._kind(self.configs[i]))
        return per_unit is None, self.length[i] * (per_unit or 1.0)

    def pop(self) -> int | None:
        """The next run to start (None when none is left)."""
        if not self.pending:
            return None
        best = max(self.pending, key=self._expected)  # the first of equals: configs' order
        self.pending.remove(best)
        return best

    def timed(self, i: int, record: dict[str, Any]) -> None:
        """Learn the time per unit of length of run ``i``'s kind from its finished run."""
        if self.length[i] > 0:
            self.per_unit[self._kind(self.configs[i])] = record["seconds"] / self.length[i]


def _length(cfg: TrainConfig) -> int:
    """A (resolved) run's length for ordering the work: its step floor, else its epochs."""
    return int(cfg.recipe.get("min_steps") or 0) or int(cfg.epochs or 0)


def doubled(cfg: TrainConfig, suffix: str = "-x2") -> TrainConfig:
    """The same run at twice the schedule: epochs, the step floor ``min_steps`` and the
    warm-up doubled, in the folder ``<out><suffix>``."""
    r = resolve(cfg)
    recipe = {**cfg.recipe, "min_steps": 2 * r.recipe.get("min_steps", 0),
              "warmup_epochs": 2 * r.recipe["warmup_epochs"]}
    return dataclasses.replace(cfg, epochs=2 * r.epochs, recipe=recipe, out=os.fspath(cfg.out) + suffix)


def schedule_check(pairs: Iterable[tuple[dict[str, Any], dict[str, Any]]],
                   tolerance: float = CONVERGENCE_TOLERANCE, seeds: Iterable[dict[str, Any]] = ()):
    """The schedule-check table: one row per (run, run at twice the schedule) pair.

    Columns: dataset, subset, model, seed, steps and the headline metric of each, their
    difference, and ``converged`` (the difference is within ``tolerance`` points). With
    ``seeds``, the records of every seed of the checked schedules, also ``seed sd`` (the
    headline metric's sd over the seeds of the run's (dataset, subset, model, teacher)) and
    ``within seed noise``: whether the change is within 1.96 x sqrt(2) x that sd, what two
    runs of different seeds differ by in 95 % of pairs (normal approximation); None with
    fewer than two seeds. The verdict stays ``converged``: the noise is context for a reader.
    """
    import pandas as pd

    def key(rec):
        p = rec["provenance"]
        return p["dataset"], p.get("subset"), p["model"], p.get("teacher")

    spread: dict = {}
    for rec in seeds:
        spread.setdefault(key(rec), []).append(float(rec["metrics"][rec["metrics"]["headline"]]))
    rows = []
    for base, twice in pairs:
        metric = base["metrics"]["headline"]
        p = base["provenance"]
        a, b = float(base["metrics"][metric]), float(twice["metrics"][metric])
        row = {
            "dataset": p["dataset"], "subset": p.get("subset"), "model": p["model"], "seed": p["seed"],
            "steps": p.get("steps"), metric: a, "steps x2": twice["provenance"].get("steps"),
            f"{metric} x2": b, "change": b - a, "converged": abs(b - a) < tolerance,
        }
        if spread:
            seeds_iv = stats.t_interval(spread.get(key(base), []))  # its sd: the one the chapters' intervals use
            sd = seeds_iv.sd if seeds_iv.n > 1 else None
            row["seed sd"] = sd
            row["within seed noise"] = None if sd is None else abs(b - a) <= 1.96 * math.sqrt(2) * sd
        rows.append(row)
    return pd.DataFrame(rows)


def check_summary(table) -> str:
    """One sentence on a schedule-check table: how many schedules converged and, of those
    that did not, how many changed by no more than seeds differ by (``within seed noise``)."""
    n, ok = len(table), int(table["converged"].sum())
    text = f"Schedule check: {ok} of {n} schedules converged (doubling moved top-1 by < {CONVERGENCE_TOLERANCE:g} points)"
    noise = table.loc[~table["converged"], "within seed noise"].dropna() if "within seed noise" in table else ()
    if len(noise):  # the schedules that did not converge and have several seeds
        within = int(noise.eq(True).sum())
        text += (f"; of the {len(noise)} that did not (with several seeds), {within} changed by no more than two seeds of the "
                 "schedule differ by (95 %), so the check cannot tell them from noise")
    return text + "."


def records_frame(recs: Iterable[dict[str, Any]]):
    """Records (as :func:`run_all` returns them) as one DataFrame: ``dataset``, ``subset``,
    ``model``, ``seed``, ``teacher``, ``steps``, ``epochs``, the metrics (``top1``, ...),
    ``how`` (trained / reused / done before), ``seconds``, ``config_hash`` and ``folder``
    (where the run's files lie)."""
    import pandas as pd

    rows = []
    for rec in recs:
        p = rec["provenance"]
        rows.append({
            "dataset": p["dataset"], "subset": p.get("subset"), "model": p["model"], "seed": p["seed"],
            "teacher": p.get("teacher"), "steps": p.get("steps"), "epochs": p.get("epochs"),
            **{k: v for k, v in rec["metrics"].items() if isinstance(v, (int, float))},
            "how": rec.get("how", "trained"), "seconds": rec.get("seconds", p.get("wall_time_s")),
            "config_hash": rec.get("config_hash"), "folder": rec["config"]["out"],
        })
    return pd.DataFrame(rows)


def learning_curves(recs: Iterable[dict[str, Any]]):
    """The evaluations during training of each run, from its ``metrics.csv``: one row per
    evaluated epoch with ``step``, ``epoch``, ``eval_top1`` (and the task's other eval
    metrics), plus the run's ``dataset``, ``subset``, ``model``, ``seed`` and total ``steps``."""
    import pandas as pd

    frames = []
    for rec in recs:
        path = Path(rec["config"]["out"]) / "metrics.csv"
        if not path.is_file():
            continue
        df = pd.read_csv(path)
        metric = f"eval_{rec['metrics']['headline']}"
        if metric not in df:
            continue
        df = df[df[metric].notna()].copy()
        p = rec["provenance"]
        for key in ("dataset", "subset", "model", "seed", "steps"):
            df[key] = p.get(key)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
