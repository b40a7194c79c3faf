# Every entry point of Redress. `make run` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := .redress/env
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: help deps run test test-rust test-python lint bench eval stop clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: ## reuse or start NATS (JetStream) and Postgres; install them if missing
	@bash deploy/local/ensure-deps.sh

run: deps ## run the whole suite in one process against local NATS and Postgres
	@source $(ENV) && $(CARGO) run --release -p redress -- dev

test: deps ## every test: unit, integration (real Postgres + NATS), end-to-end, gRPC from Python
	@$(MAKE) --no-print-directory test-rust test-python

test-rust:
	@source $(ENV) && $(CARGO) test --workspace --locked

test-python: ## a non-Rust gRPC client (grpcio) lists services by reflection and checks health
	@source $(ENV) && bash tests/python/run.sh

lint: ## buf lint, rustfmt, clippy
	@command -v npx >/dev/null || { echo "lint needs Node.js/npm (for @bufbuild/buf)"; exit 1; }
	@cd proto && npx --yes @bufbuild/buf@1 lint
	@$(CARGO) fmt --all -- --check
	@$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

bench: deps ## benchmarks; tables and JSON under target/bench/
	@source $(ENV) && $(CARGO) run --release -p redress-bench -- all

stop: ## stop the NATS and Postgres that `make deps` started
	@bash deploy/local/stop.sh

clean: stop ## stop local services and remove their data
	@rm -rf .redress
