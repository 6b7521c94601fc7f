# srs-proxy: the two commands of the README are `make run` and `make test`.
.PHONY: run test build release lint fmt fuzz clean

CARGO ?= cargo

## Build and start srs-proxy (memory store, SRS ports) with two srs-origin processes.
run: release
	bash deploy/run-demo.sh

release:
	$(CARGO) build --release -p srs-proxy -p srs-origin

build:
	$(CARGO) build --workspace --bins --tests

## Every test: unit tests and end-to-end tests with real ffmpeg, nginx-rtmp.
test: build
	$(CARGO) test --workspace -- --test-threads=3

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Run each fuzz target for FUZZ_SECONDS (default 30).
FUZZ_SECONDS ?= 30
fuzz:
	bash crates/rtmp/fuzz/run.sh $(FUZZ_SECONDS)

clean:
	$(CARGO) clean
