# Switchboard developer commands. A newcomer needs two: `make run` and `make test`.
CARGO ?= cargo
LISTEN ?= 127.0.0.1:8700
DATA_DIR ?= ./data

.PHONY: run test deps bench bench-deps lint fmt build

## run: build (release) and start Switchboard with its embedded store in ./data
run:
	$(CARGO) run --release --bin switchboard -- serve --listen $(LISTEN) --data-dir $(DATA_DIR)

## test: install what is missing, then lint and run every test
test: deps lint
	$(CARGO) test --workspace --all-targets

## deps: install what the build and the tests need (idempotent)
deps:
	@bash scripts/deps.sh

## lint: formatting and clippy with warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: load benchmarks, printed as ratios against baselines run alongside
bench: bench-deps
	$(CARGO) build --release -p switchboard -p switchboard-bench
	./target/release/switchboard-bench

## bench-deps: what the benchmarks need beyond `deps` (wrk, taskset)
bench-deps: deps
	@bash scripts/deps.sh bench

fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build --workspace --all-targets
