"""What the executed chapters print shows nothing of the machine they ran on: no library
warnings in cell output, no path into the repository's folder."""

from __future__ import annotations

import json

import nbformat
import pytest

from test_notebooks import NAMES, ROOT, smoke_chapters, smoke_workdir


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, list[tuple[str, str]]]:
    """``{chapter: [(stream name or mime type, text), ...]}`` of every code cell."""
    found = {}
    for name, (executed, error, _) in smoke_chapters(smoke_workdir(tmp_path_factory)).items():
        if error:
            pytest.fail(f"{name} failed in the smoke profile (see test_notebooks.py)")
        texts = []
        for cell in nbformat.read(executed, as_version=4).cells:
            for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
                if out.output_type == "stream":
                    texts.append((out.name, out.text))
                for mime, value in out.get("data", {}).items():
                    if mime.startswith("text/"):
                        texts.append((mime, value if isinstance(value, str) else json.dumps(value)))
        found[name] = texts
    return found


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("name", NAMES)
def test_no_warnings_and_no_repository_paths_in_cell_output(outputs, name):
    warnings = [text for kind, text in outputs[name] if kind == "stderr" and "Warning" in text]
    assert not warnings, f"{name} prints library warnings:\n{warnings[0][:500]}"
    paths = [text for _, text in outputs[name] if str(ROOT) in text]
    assert not paths, f"{name} prints the repository's absolute path ({ROOT}):\n{paths[0][:500]}"
