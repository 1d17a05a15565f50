# fraudstream: the usual paths. `make demo` runs the local demo stack; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

NODE_BIN := node_modules/.bin
PY := models/.venv/bin/python
CLI := node bin/fraudstream.js
TRAIN_DIR := data/train
TRAIN_SEED ?= 7
TRAIN_DAYS ?= 35
TRAIN_ACCOUNTS ?= 3000
MODEL_OUT ?= models/default

.PHONY: help install build venv up down status clean demo test lint typecheck unit integration train bench readme

help:
	@echo "make demo     run the local demo stack (Kafka + Redis + simulator + scorer); DEMO_SECONDS=N to bound it"
	@echo "make test     lint, format check, typecheck, unit and integration tests (starts and stops its own stack)"
	@echo "make up/down  start/stop the local Kafka (KRaft) and Redis; make status; make clean removes their data"
	@echo "make bench    benchmarks, each beside its baseline (features, scorer vs passthrough, model runner, inline HTTP, replay) -> bench/results.json"
	@echo "make train    simulate a history, emit its features through replay, train LightGBM, write $(MODEL_OUT)"

node_modules/.installed: package.json package-lock.json .npmrc
	@# npm install honours package-lock.json; npm ci would refuse it because the registry here lacks
	@# some of rollup's optional platform packages (npm records only the ones it could fetch).
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

install: node_modules/.installed

dist/.built: node_modules/.installed $(shell find lib schemas features models policy review scorer replay simulator cli scripts bench -name '*.ts' 2>/dev/null) tsconfig.json tsconfig.build.json
	$(NODE_BIN)/tsc -p tsconfig.build.json
	@touch $@

build: dist/.built

models/.venv/.installed: models/train/requirements.txt
	python3 -m venv models/.venv
	models/.venv/bin/pip install --quiet --disable-pip-version-check -r models/train/requirements.txt
	@touch $@

venv: models/.venv/.installed

up: install
	scripts/stack.sh up

down:
	scripts/stack.sh down

status:
	scripts/stack.sh status

clean: down
	rm -rf .stack dist data

demo: build
	scripts/with-stack.sh node dist/scripts/demo.js

lint: install
	$(NODE_BIN)/eslint .
	$(NODE_BIN)/prettier --check . --log-level warn

typecheck: install
	$(NODE_BIN)/tsc -p tsconfig.json --noEmit

unit: build venv
	$(NODE_BIN)/vitest run --project unit

integration: build venv
	scripts/with-stack.sh $(NODE_BIN)/vitest run --project integration

test: lint typecheck build venv
	scripts/with-stack.sh $(NODE_BIN)/vitest run

bench: build
	scripts/with-stack.sh sh -c 'node dist/bench/features.js && node dist/bench/stream.js && node dist/bench/model.js && node dist/bench/inline.js && node dist/bench/replay.js'

train: build venv
	rm -rf $(TRAIN_DIR)
	$(CLI) simulate --days $(TRAIN_DAYS) --accounts $(TRAIN_ACCOUNTS) --seed $(TRAIN_SEED) --out $(TRAIN_DIR)
	scripts/with-stack.sh $(CLI) replay --in $(TRAIN_DIR) --features-only --emit-features $(TRAIN_DIR)/features.arrow --log-level warn
	$(PY) models/train/train.py --features $(TRAIN_DIR)/features.arrow --out $(MODEL_OUT)

# Regenerates the option tables of README.md from cli/options.ts.
readme: build
	node dist/scripts/readme-options.js
	$(NODE_BIN)/prettier --write README.md --log-level warn
