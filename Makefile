# The two README commands: `make run` (the main job on the CPU default) and `make test`.
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup models run test test-fast reliability soak lint fmt

setup:
	@bash scripts/setup.sh

models: setup
	@$(BIN)/trail model prepare

# the main job on the CPU default: the Serve app (ingress + a SmolLM2 replica with TRAIL, embedded
# Redis) on loopback, a short load through the OpenAI HTTP API, then shutdown; last, FCFS, TRAIL
# and TRAIL+ (exact lengths) on one burst where order matters: 40 held-out prompts with short
# answers and a few loopers, sent at once (the experiment harness; ~2.5 min on 2 idle cores):
# FCFS / policy mean latency with 95 % intervals, a verdict per policy, a latency CDF (PNG)
run: models
	$(BIN)/trail generate "In two sentences, why does shortest-job-first reduce mean latency?" --max-tokens 64
	$(BIN)/python -m ops.loadtest.serve_load --policy trail --replicas 1 --requests 8 --concurrency 4 --max-tokens 64 --json runs/make-run/serve_load.json
	$(BIN)/trail bench burst --out runs/make-run/burst

test: models
	$(BIN)/python -m pytest -q -ra tests

# overload, replica kill, hostile input + fuzz, disconnect storm, starvation, Redis faults; each
# prints its figures (docs/reliability.md). All of them also run in `make test`.
reliability: models
	$(BIN)/python -m pytest -q -ra -s -m reliability tests

# the soak of issue 32 (docs/reliability.md, "Soak"): the app with 2 LLM + 2 ingress replicas under an
# open-loop mix for MINUTES, faults on a schedule, RSS/fds/Redis/ledger sampled every SAMPLE_S;
# summary.json + soak.png in runs/soak/<minutes>min; exits non-zero if a Done-when condition fails
# (the 5-minute one: make soak MINUTES=5 SAMPLE_S=15 STORE_TTL_S=60)
MINUTES ?= 60
SAMPLE_S ?= 60
STORE_TTL_S ?= 300
soak: models
	$(BIN)/python -m ops.soak --minutes $(MINUTES) --sample-s $(SAMPLE_S) --store-ttl-s $(STORE_TTL_S) --out runs/soak/$(MINUTES)min

test-fast: setup
	$(BIN)/python -m pytest -q -m "not engine and not serve and not slow" tests

lint: setup
	$(BIN)/ruff format --check . && $(BIN)/ruff check . && $(BIN)/lint-imports

fmt: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .
