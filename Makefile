# JPGen: the two commands of the README are `make demo` and `make test`.
# Both install what is missing first (Debian packages, with sudo when not root).

SWIFT      ?= swift
CONFIG     ?= release
# Tests run in release (numeric code is 10-100x slower in debug); -enable-testing keeps @testable.
TESTFLAGS  ?= -c $(CONFIG) -Xswiftc -enable-testing
DEB_PACKAGES = libmecab-dev mecab mecab-utils mecab-ipadic-utf8 libopenblas-dev liblapacke-dev \
               libpng-dev libsqlite3-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV ?= .venv
PROMPT ?= 江ノ島と富士山が見える風景

.PHONY: all deps build test demo venv fixtures clean bench-kernels

all: build

# Install the Debian packages that are not installed yet (nothing to do when all are present).
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build -c $(CONFIG)

test: deps
	$(SWIFT) build $(TESTFLAGS) --build-tests
	$(SWIFT) test $(TESTFLAGS) --skip-build

demo: build
	$(SWIFT) run -c $(CONFIG) jpgen --help

# Kernel benchmarks (JSON lines): our GEMM and conv2d next to raw cblas_sgemm in the same run.
bench-kernels: deps
	$(SWIFT) build -c release --product jpbench
	$$($(SWIFT) build -c release --show-bin-path)/jpbench gemm
	$$($(SWIFT) build -c release --show-bin-path)/jpbench conv
	$$($(SWIFT) build -c release --show-bin-path)/jpbench ops

# The Python reference side, only for regenerating fixtures and comparison benchmarks.
venv:
	[ -x $(VENV)/bin/python ] || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r Tools/fixtures/requirements.txt

fixtures: venv
	for s in Tools/fixtures/*.py; do echo "== $$s"; $(VENV)/bin/python $$s || exit 1; done

clean:
	rm -rf .build
