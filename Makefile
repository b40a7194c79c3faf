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

DATA ?= $(or $(REDRESS_DATA_DIR),../shared/data)
eval: ## train on a fixed split of the shared data, evaluate on the rest; reports in target/eval/
	@test -f "$(DATA)/cfpb_complaints.csv" || { echo "eval needs the labelled data in $(DATA) (or REDRESS_DATA_DIR)"; exit 1; }
	@mkdir -p target/eval
	@$(CARGO) build --release -q -p redress
	@for spec in "en cfpb_complaints.csv narrative product_group cfpb_product_group" "zh cn_complaints.csv text category cn_category"; do \
	  set -- $$spec; \
	  echo "== $$1: $$2 ($$4), trained on the fixed 80%, measured on the other 20%"; \
	  target/release/redress classification train --holdout --data "$(DATA)/$$2" --text-column $$3 --label-column $$4 \
	    --label-scheme $$5 --model-version eval-$$1 --out target/eval/$$1.model | tee target/eval/$$1.txt; \
	  target/release/redress classification eval --holdout --json --data "$(DATA)/$$2" --text-column $$3 --label-column $$4 \
	    --model target/eval/$$1.model > target/eval/$$1.json; \
	done
