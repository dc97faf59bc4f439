# A thin wrapper over meson/ninja and the scripts. See README.md.
BUILD ?= build
SAN_BUILD ?= build-san
FUZZ_BUILD ?= build-fuzz
PREFIX ?= /usr/local

.PHONY: all deps build demo test test-unit test-fuzz test-e2e bench install clean format lint

all: build

deps:
	scripts/deps.sh

build: deps
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) --prefix=$(PREFIX)
	ninja -C $(BUILD)

demo: build
	scripts/demo.sh

test: deps build
	scripts/test.sh

test-unit: build
	scripts/test.sh unit

test-fuzz: build
	scripts/test.sh fuzz

test-e2e: build
	scripts/test.sh e2e

bench: build
	/usr/bin/python3 bench/overhead.py --db-endpoint
	bench/pipeline.sh
	$(BUILD)/pgwire_bench tests/data

install: build
	meson install -C $(BUILD)

format:
	clang-format -i bpf/*.c bpf/*.h user/*.c user/*.h cli/*.c cli/*.h include/timeglass/*.h tests/unit/*.c tests/fuzz/*.c bench/*.c

lint: build
	scripts/lint.sh

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(FUZZ_BUILD)
