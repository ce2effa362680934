"""The project's set-up files agree with each other and with the package."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {canonicalize_name(Requirement(r).name): Requirement(r) for r in reqs}


def _environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = {}
    for line in pip:
        if line.startswith("-e"):
            continue
        name, _, ver = line.partition("==")
        assert ver, f"environment.yml: {line!r} is not an exact pin (NAME==VERSION)"
        pins[canonicalize_name(name)] = ver
    return pins


def test_environment_pins_the_same_packages_as_pyproject():
    reqs, pins = _pyproject_requirements(), _environment_pins()
    assert set(pins) == set(reqs), (
        f"only in pyproject.toml: {sorted(set(reqs) - set(pins))}; "
        f"only in environment.yml: {sorted(set(pins) - set(reqs))}"
    )


def test_environment_pins_satisfy_pyproject_ranges():
    reqs, pins = _pyproject_requirements(), _environment_pins()
    bad = {n: (pins[n], str(reqs[n].specifier)) for n in pins if n in reqs
           and not reqs[n].specifier.contains(pins[n], prereleases=True)}
    assert not bad, f"pins outside pyproject.toml's ranges: {bad}"


def test_cli_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "lifestudy", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for sub in ("train", "eval", "complexity", "bench", "data", "rollout"):
        assert sub in out


@pytest.mark.parametrize("sub", ["train", "eval", "complexity", "bench", "data", "rollout"])
def test_each_subcommand_has_help(sub):
    res = subprocess.run([sys.executable, "-m", "lifestudy", sub, "--help"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "usage: lifestudy " + sub in res.stdout
