# The platform in one command: `make up`. `make help` lists the targets.

PY         := .venv/bin/python
CATEGORIES := packages workers ml dev-packages
STAMP      := .venv/.synced
ARGS       ?=
export PYTHONPATH := $(CURDIR)/src

.DEFAULT_GOAL := help
.PHONY: help install services up demo models test bench lint docs deploy-files clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP)  ## the virtualenv from Pipfile.lock (again only when the lock changes)

# The lock pins torch==2.13.0+cpu: `pipenv sync` installs exactly the lock, so no CUDA package comes in.
$(STAMP): Pipfile.lock
	@grep -q '"==2.13.0+cpu"' Pipfile.lock || { echo "Pipfile.lock must pin torch==2.13.0+cpu (no CUDA)"; exit 1; }
	@command -v pipenv >/dev/null || python3 -m pip install pipenv==2026.10.3
	PIPENV_VENV_IN_PROJECT=1 pipenv sync --categories "$(CATEGORIES)"
	@touch $@

services: install  ## RabbitMQ (+ management API) and Redis: reach them, or start private ones under run/
	$(PY) -m launcher services

up: install  ## services, then the API, one worker pool per job type and Flower, until Ctrl-C
	$(PY) -m launcher up

demo: install  ## a few jobs of every type, made offline, against the platform `make up` runs (ARGS="--only scrape")
	$(PY) -m client demo $(ARGS)

test: install services  ## the test suite (pass pytest options as ARGS="...")
	$(PY) -m pytest $(ARGS)

bench: install services  ## benchmarks next to their baselines (< 10 min), then docs/benchmarks.md (ARGS="--only submit")
	$(PY) -m bench.run $(ARGS)

models: install  ## YOLO weights (yolov8n.pt) and their ONNX export into models/; needs internet (ARGS="yolov8s.pt")
	$(PY) -m workers.detection.weights --onnx $(ARGS)

docs: install  ## regenerate the README's job types and settings tables and .env.example from the settings' descriptions (global and each spec's)
	$(PY) -m common.settings_table env > .env.example
	$(PY) -m common.readme_tables

deploy-files: install  ## rewrite Compose's worker services and deploy/k8s's workers and KEDA from the catalog
	$(PY) -m launcher.deploy_files

lint:  ## ruff and mypy
	$(PY) -m ruff check src tests bench
	$(PY) -m mypy src

clean:  ## stop private services, remove their data, caches and the install stamp (keeps .venv)
	-@if [ -x $(PY) ]; then $(PY) -m launcher stop; fi
	rm -rf run/rabbitmq run/redis .ruff_cache .mypy_cache .pytest_cache $(STAMP)
	find src tests bench -name __pycache__ -type d -prune -exec rm -rf {} +
