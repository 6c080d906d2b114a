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

.PHONY: all deps dictionary build test demo venv fixtures clean bench-kernels bench-unet-vae fuzz fuzz-png

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

# The MeCab user dictionary of Dictionaries/, compiled against the installed system ipadic.
MECAB_DICT_INDEX ?= /usr/lib/mecab/mecab-dict-index
SYSTEM_DIC ?= /var/lib/mecab/dic/ipadic-utf8
dictionary: .build-dic/jpgen-prompts.dic
.build-dic/jpgen-prompts.dic: Dictionaries/jpgen-prompts.csv | deps
	mkdir -p .build-dic
	$(MECAB_DICT_INDEX) -d $(SYSTEM_DIC) -u $@.tmp -f utf-8 -t utf-8 $< && mv $@.tmp $@

build: deps dictionary
	$(SWIFT) build -c $(CONFIG)

test: deps dictionary
	$(SWIFT) build $(TESTFLAGS) --build-tests
	$(SWIFT) test $(TESTFLAGS) --skip-build

# The main job on the embedded default (the bundled demo model, Models/demo-lcm): one PNG with its
# prompt, seed and settings in a `parameters` text chunk.
demo: build
	mkdir -p demo-output
	$(SWIFT) run -c $(CONFIG) jpgen "江ノ島と富士山が見える風景" --seed 1 --count 4 --output demo-output/enoshima-fuji.png

# Kernel benchmarks (JSON lines): our GEMM and conv2d next to raw cblas_sgemm in the same run.
bench-kernels: deps
	$(SWIFT) build -c release --product jpbench
	$$($(SWIFT) build -c release --show-bin-path)/jpbench gemm
	$$($(SWIFT) build -c release --show-bin-path)/jpbench conv
	$$($(SWIFT) build -c release --show-bin-path)/jpbench ops

# UNet/VAE benchmarks next to diffusers on the same random full-size models (SDXL: add ARGS=--sdxl).
bench-unet-vae: deps
	$(SWIFT) build -c release --product jpbench
	.venv/bin/python Tools/bench_unet_vae.py --jpbench $$($(SWIFT) build -c release --show-bin-path)/jpbench $(ARGS)

# The Python reference side, only for regenerating fixtures and comparison benchmarks.
venv:
	[ -x $(VENV)/bin/python ] || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r Tools/fixtures/requirements.txt

fixtures: venv
	for s in Tools/fixtures/*.py; do echo "== $$s"; $(VENV)/bin/python $$s || exit 1; done

# libFuzzer on the safetensors header parser (Fuzz/SafeTensorsHeaderFuzz; not part of the package
# build). Runs FUZZ_TIME seconds; a finding is written to $(FUZZ_DIR)/artifacts/ and fails the target.
SWIFTC    ?= swiftc
FUZZ_TIME ?= 600
FUZZ_DIR  ?= .build-fuzz
FUZZ_SRC   = Fuzz/SafeTensorsHeaderFuzz/FuzzEntry.swift \
             $(addprefix Sources/SafeTensors/,HeaderJSON.swift SafeTensorsHeader.swift SafeTensorsDType.swift SafeTensorsError.swift)
fuzz:
	mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/artifacts
	$(SWIFTC) -sanitize=fuzzer,address -parse-as-library -O -module-name SafeTensorsFuzz $(FUZZ_SRC) \
	  -o $(FUZZ_DIR)/safetensors-header-fuzz 2>&1 | grep -v "Cannot export local symbol" || true
	cp Fuzz/SafeTensorsHeaderFuzz/corpus/* Tests/Fixtures/SafeTensors/good/*.safetensors $(FUZZ_DIR)/corpus/
	$(FUZZ_DIR)/safetensors-header-fuzz -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	  -dict=Fuzz/SafeTensorsHeaderFuzz/safetensors.dict -artifact_prefix=$(FUZZ_DIR)/artifacts/ $(FUZZ_DIR)/corpus

# libFuzzer on the PNG decoder's C layer (Fuzz/PNGDecodeFuzz over Sources/CPNGShim and libpng).
fuzz-png:
	mkdir -p $(FUZZ_DIR)/png-corpus $(FUZZ_DIR)/png-artifacts
	clang -O1 -g -fsanitize=fuzzer,address -I Sources/CPNGShim/include Fuzz/PNGDecodeFuzz/fuzz_png.c \
	  Sources/CPNGShim/jpgen_png.c -lpng16 -o $(FUZZ_DIR)/png-decode-fuzz 2>&1 | grep -v "Cannot export local symbol" || true
	cp Fuzz/PNGDecodeFuzz/corpus/* $(FUZZ_DIR)/png-corpus/
	$(FUZZ_DIR)/png-decode-fuzz -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_DIR)/png-artifacts/ $(FUZZ_DIR)/png-corpus Fuzz/PNGDecodeFuzz/regressions

clean:
	rm -rf .build
