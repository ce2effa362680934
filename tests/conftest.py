"""Shared test set-up: quiet plotting, one torch thread per xdist worker."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("LIFESTUDY_QUIET", "1")

import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: one thread each, or they fight over the cores.
    torch.set_num_threads(1)
