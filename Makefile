# Shortcuts for the commands a user runs often. QUANTSURVEY_DATA points at the data root.
PY ?= python

.PHONY: install test test-all lint baselines report

install:
	$(PY) -m pip install -e ".[dev]"

test:            ## the default suite (what CI runs), under 10 minutes on 2 cores
	pytest

test-all:        ## every test, slow ones included
	pytest -m "slow or not slow"

lint:
	ruff check quantsurvey tests scripts

baselines:       ## the float LeNet baselines, 3 seeds each (≈ 25 min on 2 CPU cores)
	bash scripts/reproduce_baselines.sh

report:          ## rebuild results/results.csv and results/README.md
	quantsurvey-report
