# mm: `make demo` and `make test` install what is missing (Debian 12, as root), build, and run.
BUILD  ?= build
JOBS   ?= $(shell nproc)
PYTHON ?= /usr/bin/python3

APT_PACKAGES = cmake ninja-build g++ python3 python3-numpy \
  libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools \
  libflatbuffers-dev flatbuffers-compiler libgtest-dev

.PHONY: all deps configure build test demo clean

all: build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

configure: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DMM_PYTHON=$(PYTHON)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	tools/demo.sh $(BUILD) $(PYTHON)

clean:
	rm -rf $(BUILD)
