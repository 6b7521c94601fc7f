# srs-proxy: the two commands of the README are `make run` and `make test`.
.PHONY: run test build release lint fmt fuzz clean setup

CARGO ?= cargo

## Install what run and test need when missing (apt; prints the command when not root).
setup:
	bash deploy/setup.sh

## Build and start srs-proxy (memory store, SRS ports), two srs-origin processes and a test
## publisher; prints the play URLs of every protocol.
run: setup release
	bash deploy/run-demo.sh

release:
	$(CARGO) build --release -p srs-proxy -p srs-origin -p srs-rtc-client

build:
	$(CARGO) build --workspace --bins --tests

## Every test: unit tests and end-to-end tests with real ffmpeg, nginx-rtmp.
test: setup build
	$(CARGO) test --workspace -- --test-threads=3

lint:
	$(CARGO) fmt --all --check
	bash deploy/check-msrv.sh
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Run every fuzz target (fuzz/) for FUZZ_SECONDS each (default 30); prints runs per target.
FUZZ_SECONDS ?= 30
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

clean:
	$(CARGO) clean

## Benchmarks (docs/benchmarks.md): srs-proxy vs srs-origin direct vs haproxy, same run.
## Options: BENCH_SCENARIOS=1x100,10x100,100x1,flv2x200,flv10k,hls100,throughput,srt,webrtc BENCH_SECONDS=20 BENCH_WARMUP=5 BENCH_RTC_PLAYERS=20
.PHONY: bench bench-alloc bench-build bench-media
BENCH_MEDIA_DIR := target/bench-media

bench-build:
	$(CARGO) build --release -p srs-proxy -p srs-origin -p srs-bench

bench-media: $(BENCH_MEDIA_DIR)/hd.flv $(BENCH_MEDIA_DIR)/low.flv $(BENCH_MEDIA_DIR)/hd.ts

# 720p H.264 + AAC at ~2.5 Mbit/s, 10 s, GOP 2 s (noise keeps the encoder at its bit rate).
$(BENCH_MEDIA_DIR)/hd.flv:
	mkdir -p $(@D)
	ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1280x720:rate=25" \
	  -f lavfi -i "sine=frequency=440:sample_rate=44100" -t 10 -vf "noise=alls=12:allf=t" \
	  -c:v libx264 -preset veryfast -pix_fmt yuv420p -b:v 2300k -maxrate 2300k -bufsize 2300k \
	  -g 50 -keyint_min 50 -sc_threshold 0 -c:a aac -b:a 128k -ar 44100 -f flv $@.tmp
	mv $@.tmp $@

# The same 720p media as MPEG-TS, for the SRT publisher (`srt` scenario).
$(BENCH_MEDIA_DIR)/hd.ts: $(BENCH_MEDIA_DIR)/hd.flv
	ffmpeg -hide_banner -loglevel error -y -i $< -c copy -f mpegts $@.tmp
	mv $@.tmp $@

# Low bit rate for the 10,000-player scenario: 320x180 at 5 fps, 64 kbit/s, GOP 2 s, no audio.
$(BENCH_MEDIA_DIR)/low.flv:
	mkdir -p $(@D)
	ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=320x180:rate=5" -t 10 \
	  -c:v libx264 -preset veryfast -pix_fmt yuv420p -b:v 64k -maxrate 64k -bufsize 128k \
	  -g 10 -keyint_min 10 -sc_threshold 0 -an -f flv $@.tmp
	mv $@.tmp $@

## Every scenario, direct / through srs-proxy / through haproxy; prints and saves the table.
## The servers inherit the raised descriptor limit (10,000 players need ~20,000 in srs-proxy).
bench: bench-build bench-media
	ulimit -n $$(ulimit -Hn) && ./target/release/srs-bench suite

## Heap allocations per relayed message in srs-proxy (heaptrack; apt-get install heaptrack).
bench-alloc: bench-build bench-media
	ulimit -n $$(ulimit -Hn) && ./target/release/srs-bench alloc
