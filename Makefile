# The two commands of the README's quick start:
#   make demo   set up, build (release) and run the main job
#   make test   set up and run everything CI checks (what .ci/run calls)
SWIFT ?= swift
KEEL := .build/release/keel

.PHONY: demo test setup build bench-io clean

setup:
	@scripts/setup.sh

build: setup
	$(SWIFT) build -c release --product keel

# The main job: a local 3-node cluster of separate processes with the echo service, driven by a
# client; the leader is killed, a new one takes over, the client carries on, the killed node rejoins.
demo: build
	$(KEEL) demo

# The IO benchmark of docs/benchmarks.md (this machine's disk through io_uring against plain syscalls).
bench-io: build
	$(KEEL) bench io

test: setup
	@scripts/test.sh

clean:
	rm -rf .build .build-*
