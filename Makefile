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

# The main job. Until the cluster exists (issue 6) it is the IO benchmark, which measures this
# machine's disk through io_uring against plain syscalls and prints the table of docs/benchmarks.md.
demo: build
	$(KEEL) bench io

test: setup
	@scripts/test.sh

clean:
	rm -rf .build .build-*
