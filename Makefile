# The two commands of the README:
#   make quickstart   build the library and run examples/quickstart.c
#   make test         build the library and run every test (Rust and C)
# and the benchmark (docs/PERFORMANCE.md):
#   make bench        billiard against the machine floor and its peers
#   make bench-quick  the same, small, to prove it runs (CI)
CARGO   ?= cargo
CC      ?= cc
PROFILE ?= debug
LIBDIR  := target/$(PROFILE)
CFLAGS  ?= -std=c99 -Wall -Wextra -Werror -pedantic -O1 -g
CPPFLAGS += -D_POSIX_C_SOURCE=200809L -Iinclude
LDLIBS  := -L$(LIBDIR) -Wl,-rpath,$(abspath $(LIBDIR)) -lbilliard -pthread
CARGO_PROFILE_FLAG := $(if $(filter release,$(PROFILE)),--release,)

.PHONY: lib quickstart examples test bench bench-quick bench-setup release-lib clean

lib:
	$(CARGO) build --lib $(CARGO_PROFILE_FLAG)

build/%: examples/%.c include/billiard.h lib
	@mkdir -p build
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(LDLIBS)

quickstart: build/quickstart
	./build/quickstart

examples: build/quickstart build/poll_fd

test: lib
	$(CARGO) test $(CARGO_PROFILE_FLAG)

# The Python peers (billiard, multiprocessing) live in a virtual environment.
BENCH_VENV := target/bench-venv
bench-setup: $(BENCH_VENV)/.ready
$(BENCH_VENV)/.ready: bench/requirements.txt
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet -r bench/requirements.txt
	touch $@

release-lib:
	$(CARGO) build --lib --release

build/idle_rss: bench/idle_rss.c include/billiard.h release-lib
	@mkdir -p build
	$(CC) $(CPPFLAGS) $(CFLAGS) -O2 $< -o $@ -Ltarget/release -Wl,-rpath,$(abspath target/release) -lbilliard -pthread

bench: bench-setup build/idle_rss
	$(CARGO) bench --bench pool

bench-quick: bench-setup build/idle_rss
	$(CARGO) bench --bench pool -- --quick

clean:
	rm -rf build
	$(CARGO) clean
