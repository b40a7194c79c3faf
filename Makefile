# Every entry point of Redress. `make run` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := .redress/env
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: help deps run test test-rust test-python test-quickstart lint check-tree deploy-check bench chaos eval stop clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

deps: ## reuse or start NATS (JetStream) and Postgres; install them if missing
	@bash deploy/local/ensure-deps.sh

# `make run` and `make test` share one build (the dev profile, dependencies optimised): the
# first of them compiles everything once, the other reuses it.
run: deps ## run the whole suite in one process against local NATS and Postgres (REDRESS_NATS_SECURE=1: separate processes on a bus with deploy/nats permissions)
	@$(CARGO) build --locked -p redress -p redress-intake -p redress-classification -p redress-case-coordination
	@mkdir -p .redress/bin && ln -sf "$(CURDIR)/target/debug/redress" .redress/bin/redress
	@if [ "$${REDRESS_NATS_SECURE:-}" = 1 ]; then source $(ENV) && bash deploy/nats/run-secure.sh; \
	else source $(ENV) && target/debug/redress dev; fi

test: deps ## every test: unit, integration (real Postgres + NATS), end-to-end, the README quick start, gRPC from Python
	@bash deploy/local/ensure-test-tools.sh
	@$(MAKE) --no-print-directory test-rust test-python test-quickstart

test-rust:
	@source $(ENV) && $(CARGO) test --workspace --locked

test-python: ## a non-Rust gRPC client (grpcio) lists services by reflection, checks health, calls with a token
	@source $(ENV) && bash tests/python/run.sh

test-quickstart: ## run the README's quick start and its Keys section, verbatim
	@source $(ENV) && bash tests/quickstart/run.sh
	@source $(ENV) && bash tests/quickstart/operations.sh

lint: check-tree ## buf lint, AsyncAPI validation, rustfmt, clippy (warnings are errors), no development key in a service build
	@command -v npx >/dev/null || { echo "lint needs Node.js/npm (for @bufbuild/buf and @asyncapi/cli)"; exit 1; }
	@cd proto && npx --yes @bufbuild/buf@1 lint
	@npx --yes @asyncapi/cli@2 validate docs/asyncapi.json --fail-severity=warn 2>&1 | grep -v -e "anonymous metrics" -e "EBADENGINE"; test $${PIPESTATUS[0]} -eq 0
	@$(CARGO) fmt --all -- --check
	@$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	@bash .ci/check-no-dev-keys

deploy-check: deps ## render and validate the Kubernetes overlays (schemas, CRDs, checkov); test the NATS permissions and an R3 cluster with real servers
	@source $(ENV) && bash deploy/check/run.sh

check-tree: ## no machine-only paths in tracked files; queries are checked at run time (no sqlx offline data)
	@bash .ci/check-tree

bench: deps ## benchmarks; tables and JSON under target/bench/
	@source $(ENV) && $(CARGO) run --release --locked -p redress-bench -- all

chaos: deps ## kill, pause and starve every part under load; prints fault / recovered in / lost / duplicated
	@source $(ENV) && $(CARGO) run --release --locked -p redress-e2e --bin redress-chaos

stop: ## stop the NATS and Postgres that `make deps` started
	@bash deploy/local/stop.sh

clean: stop ## stop local services and remove their data
	@rm -rf .redress

DATA ?= $(or $(REDRESS_DATA_DIR),../shared/data)
eval: ## train on a fixed split of labelled data, evaluate on the rest; reports in target/eval/
	@test -f "$(DATA)/cfpb_complaints.csv" || { echo "eval needs labelled complaints in $(DATA) (or REDRESS_DATA_DIR): cfpb_complaints.csv with columns narrative and product_group — the public CFPB Consumer Complaint Database export (consumerfinance.gov/data-research/consumer-complaints), narratives only — and optionally cn_complaints.csv with columns text and category"; exit 1; }
	@mkdir -p target/eval
	@$(CARGO) build --release -q -p redress
	@for spec in "en cfpb_complaints.csv narrative product_group cfpb_product_group" "zh cn_complaints.csv text category cn_category"; do \
	  set -- $$spec; \
	  test -f "$(DATA)/$$2" || { echo "== $$1: $(DATA)/$$2 not found, skipped"; continue; }; \
	  echo "== $$1: $$2 ($$4), trained on the fixed 80%, measured on the other 20%"; \
	  target/release/redress classification train --holdout --data "$(DATA)/$$2" --text-column $$3 --label-column $$4 \
	    --label-scheme $$5 --model-version eval-$$1 --out target/eval/$$1.model | tee target/eval/$$1.txt; \
	  target/release/redress classification eval --holdout --json --data "$(DATA)/$$2" --text-column $$3 --label-column $$4 \
	    --model target/eval/$$1.model > target/eval/$$1.json; \
	done
