# lifestudy — the path CI runs. Two commands do all the set-up on a fresh machine:
#   make test    install (first time), run the unit tests and the smoke-profile notebooks
#   make book    install (first time), fetch data, execute the notebooks, build the book
# With no virtual env / conda env active, everything is installed into .venv/;
# inside an active env, that env is used.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PROFILE ?= cpu
# The torch build to install when the environment has none (override on other machines,
# e.g. TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cu126").
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

ifneq ($(strip $(VIRTUAL_ENV)$(CONDA_PREFIX)),)
  PY := python
  INSTALLED := .make/installed-env
else
  PY := .venv/bin/python
  INSTALLED := .venv/.installed
endif

.PHONY: help install test test-data book data clean book-check
help:
	@echo "make test            install if needed, run unit tests + smoke notebooks + smoke book build"
	@echo "make book            reproduce the study (PROFILE=$(PROFILE); also smoke | paper) and build book/_build/html"
	@echo "make data            fetch the datasets the default book needs (into data/)"
	@echo "make book-check      open every page of the built book in headless Chromium (Debian package chromium)"
	@echo "make colab           rewrite the chapters' Colab set-up cells (repository.url of book/_config.yml) and notebooks/colab/*.ipynb"
	@echo "make install         install the project and its extras (into .venv/ unless an env is active)"

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@echo ">>> installing lifestudy into $(if $(filter .venv/%,$(INSTALLED)),.venv/,the active environment)"
	@if [ "$(PY)" = ".venv/bin/python" ] && [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[book,dev]"
	@mkdir -p $(dir $@) && touch $@

test: $(INSTALLED) test-data
	$(PY) -m pytest $(PYTEST_ARGS)

# The data the tests read (the scenes' Fashion-MNIST items), at the root they read it
# from ($$LIFESTUDY_DATA, else data/), through the fetch chain of `lifestudy data fetch`:
# the files in place, the Debian package's, `apt-get download` of it, torchvision's download.
test-data: $(INSTALLED)
	$(PY) -m lifestudy data fetch fashion-mnist

data: $(INSTALLED)
	$(PY) -m lifestudy data fetch fashion-mnist --root $(DATA_ROOT)
	$(PY) -m lifestudy data fetch digits --root $(DATA_ROOT)

# ---- the book -------------------------------------------------------------------------
# `make book [PROFILE=cpu|smoke|paper] [DEVICE=cpu|cuda] [SEEDS=0,1,2]`:
#   1. each notebooks/NN_name.py (jupytext percent format) becomes a notebook and is
#      executed by papermill with the parameters injected, into book/_executed/$(PROFILE)/;
#      its runs land in runs/$(PROFILE)/NN_name/. A chapter is re-executed only when its
#      source, the package's code or the settings (DEVICE, SEEDS) changed; each profile
#      keeps its own executed chapters, so switching profiles re-runs nothing.
#   2. the profile's chapters are copied to book/chapters/ and jupyter-book builds
#      book/_build/html strictly: a failing cell or any Sphinx warning fails the build.
DEVICE ?= cpu
SEEDS ?=
RUNS_DIR ?= runs/$(PROFILE)
# Relative to the repository (papermill runs each chapter there: --cwd), so the injected
# parameters cell and what the chapters print show nothing of the machine.
DATA_ROOT ?= data
JUPYTER_BOOK := $(if $(filter .venv/%,$(PY)),.venv/bin/jupyter-book,jupyter-book)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.py))
CHAPTERS := $(notdir $(NOTEBOOKS:.py=))
EXECUTED := $(CHAPTERS:%=book/_executed/$(PROFILE)/%.ipynb)
COLAB_NOTEBOOKS := $(CHAPTERS:%=notebooks/colab/%.ipynb)
PACKAGE_SRC := $(shell find lifestudy -name '*.py' -not -path '*/__pycache__/*' 2>/dev/null)
BOOK_SRC := book/_config.yml book/_toc.yml $(wildcard book/*.md book/*.bib book/_ext/*.py)
BOOK_SETTINGS := .make/book-$(PROFILE).settings
PAPERMILL_PARAMS = -p profile $(PROFILE) -p device $(DEVICE) -p data_root $(DATA_ROOT) \
	-p out_dir $(RUNS_DIR)/$* $(if $(SEEDS),-y "seeds: [$(SEEDS)]")

.PHONY: colab book-clean FORCE

book: $(INSTALLED) data $(EXECUTED)
	@echo ">>> [book $(PROFILE)] copying $(words $(EXECUTED)) executed chapters into book/chapters/"
	@rm -rf book/chapters && $(PY) book/tools/chapters.py book/chapters $(EXECUTED)
	@echo ">>> [book $(PROFILE)] jupyter-book build book (strict: -W -n --keep-going)"
	@start=$$(date +%s); \
	$(JUPYTER_BOOK) build book --all -W -n --keep-going; rc=$$?; \
	echo ">>> [book $(PROFILE)] build took $$(( $$(date +%s) - start )) s; open book/_build/html/index.html"; \
	exit $$rc

# One executed chapter: jupytext -> papermill (into a temporary file, renamed only on
# success, so a failed chapter is never taken for a finished one).
book/_executed/$(PROFILE)/%.ipynb: notebooks/%.py $(PACKAGE_SRC) $(BOOK_SETTINGS) | $(INSTALLED)
	@# A re-executed chapter re-runs everything it trains: its old runs go first.
	@rm -rf $(RUNS_DIR)/$* && mkdir -p $(@D) $(RUNS_DIR)/$*
	@echo ">>> [book $(PROFILE)] executing $< (runs in $(RUNS_DIR)/$*)"
	@start=$$(date +%s); \
	$(PY) -m jupytext --quiet --to ipynb --output $@.src.ipynb $< \
	&& MPLBACKEND=module://matplotlib_inline.backend_inline $(PY) -m papermill --cwd $(CURDIR) --kernel python3 --no-progress-bar --log-level WARNING \
		$@.src.ipynb $@.tmp.ipynb $(PAPERMILL_PARAMS) \
	&& mv $@.tmp.ipynb $@; rc=$$?; rm -f $@.src.ipynb; \
	echo ">>> [book $(PROFILE)] $* $$([ $$rc = 0 ] && echo done || echo FAILED, see $@.tmp.ipynb) in $$(( $$(date +%s) - start )) s"; \
	exit $$rc

# Chapter 9 (the records of all chapters, the claims scorecard) runs after every other one.
book/_executed/$(PROFILE)/09_results.ipynb: $(filter-out %/09_results.ipynb,$(EXECUTED))
# Chapter 5 starts detection backbones from chapter 6's segmenters: chapter 6 runs first.
book/_executed/$(PROFILE)/05_detection.ipynb: book/_executed/$(PROFILE)/06_segmentation.ipynb

# Re-execute the chapters of a profile when DEVICE or SEEDS change (the file changes
# only when its content would).
$(BOOK_SETTINGS): FORCE
	@mkdir -p $(@D)
	@echo "DEVICE=$(DEVICE) SEEDS=$(SEEDS)" | cmp -s - $@ || echo "DEVICE=$(DEVICE) SEEDS=$(SEEDS)" > $@

# The committed, output-free Colab copies of the chapters (the book's Colab buttons open
# them; tests/test_book.py fails when they drift from notebooks/*.py).
colab: $(COLAB_NOTEBOOKS)
notebooks/colab/%.ipynb: notebooks/%.py book/tools/colab.py book/_config.yml | $(INSTALLED)
	$(PY) book/tools/colab.py $<

# Every page of the built book in headless Chromium (Debian's `chromium`, driven by
# Playwright from the `check` extra): fails on a console error, a missing image, math left
# unrendered, a request that leaves localhost, or a broken internal link. Not part of
# `make test` (it needs a browser): run it after `make book`.
book-check: $(INSTALLED)
	@$(PY) -c "import playwright" 2>/dev/null || $(PY) -m pip install --quiet -e ".[check]"
	$(PY) book/tools/check_book.py book/_build/html

book-clean:
	rm -rf book/_build book/chapters book/_executed .make/book-*.settings

clean:
	rm -rf book/_build .make
