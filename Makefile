# The two commands of the README:
#   make quickstart   build the library and run examples/quickstart.c
#   make test         build the library and run every test (Rust, C, bindings)
#   make test-loaded  the same, beside a CPU hog on every core
# Installing (release build; needs only cargo, make and a C compiler):
#   make install PREFIX=/usr/local [DESTDIR=...]   and   make uninstall
# and the benchmark (docs/PERFORMANCE.md):
#   make bench        billiard against the machine floor and its peers
#   make bench-quick  the same, small, to prove it runs (CI)
#   make bench-python the Python Pool rows alone (part of both)
#   make bench-celery Celery on libbilliard against prefork (part of both)
#   make bench-ruby   Billiard.map against Parallel.map (part of both)
#   make bench-go     the Go binding's Map against os/exec per item (part of both)
CARGO   ?= cargo
CC      ?= cc
PROFILE ?= debug
OUTDIR  := target/$(PROFILE)
CFLAGS  ?= -std=c99 -Wall -Wextra -Werror -pedantic -O1 -g
CPPFLAGS += -D_POSIX_C_SOURCE=200809L -Iinclude
LDLIBS  := -L$(OUTDIR) -Wl,-rpath,$(abspath $(OUTDIR)) -lbilliard -pthread
CARGO_PROFILE_FLAG := $(if $(filter release,$(PROFILE)),--release,)

.PHONY: lib quickstart examples test test-loaded bench bench-quick bench-python bench-celery \
	bench-ruby bench-go \
	bench-setup \
	release-lib clean \
	install uninstall test-c-checked test-bindings test-install-bindings test-python python-tests \
	test-go test-ruby

lib:
	$(CARGO) build --lib $(CARGO_PROFILE_FLAG)

build/%: examples/%.c include/billiard.h lib
	@mkdir -p build
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(LDLIBS)

quickstart: build/quickstart
	./build/quickstart

examples: build/quickstart build/poll_fd

# The whole suite beside a CPU hog on every core (tests/scripts/loaded):
# timing in tests only bounds behaviour, so this must pass too.
test-loaded:
	tests/scripts/loaded $(MAKE) test

# Every test: Rust and C, the C tests again under the sanitizers and
# valgrind, then each binding's own tests. A step whose toolchain is missing
# is skipped with a message (a failure when CI=true): tests/scripts/optional.
OPTIONAL := tests/scripts/optional
test: lib
	$(CARGO) test $(CARGO_PROFILE_FLAG)
	$(MAKE) test-c-checked test-bindings

test-bindings: test-python test-go test-ruby test-install-bindings

# Each binding installed the way its users install it (pip, gem, a Go
# module through pkg-config), fresh, and used from outside the tree.
test-install-bindings:
	$(OPTIONAL) "binding installs" \
		"python3 -m venv --help && gem --version && go version && pkg-config --version" \
		tests/scripts/install_bindings

# Ruby: the ffi gem, tested with minitest.
test-ruby: lib
	$(OPTIONAL) "Ruby binding" "ruby -e 'require \"ffi\"; require \"minitest\"'" \
		env LIBBILLIARD_PATH=$(abspath $(OUTDIR))/libbilliard.so \
		ruby -Ibindings/ruby/lib -e 'ARGV.each { |f| require File.expand_path(f) }' \
		bindings/ruby/test/test_pool.rb bindings/ruby/test/test_frameworks.rb bindings/ruby/test/test_map.rb

# Go: cgo through pkg-config (the uninstalled billiard.pc of this build);
# Go's caches under target/, so no $HOME is needed.
test-go: lib
	$(OPTIONAL) "Go binding" "go version" \
		env PKG_CONFIG_PATH=$(abspath $(OUTDIR))/pkgconfig \
		GOCACHE=$(abspath target/go/cache) GOPATH=$(abspath target/go/path) \
		sh -c 'cd bindings/go && go vet ./... && go test -count=1 ./...'

# Python: the package installed as its users install it (pip install
# ./bindings/python into a virtual environment, which builds the release
# library into the package), then its tests run against that install.
PY_VENV := target/py-venv
test-python: lib
	$(OPTIONAL) "Python binding" "python3 -c 'import venv, ensurepip, ctypes'" \
		$(MAKE) python-tests
python-tests: $(PY_VENV)/.ready
	$(PY_VENV)/bin/pip install --quiet --disable-pip-version-check --force-reinstall \
		--no-deps ./bindings/python
	cd bindings/python/tests && env -u LIBBILLIARD_PATH \
		TEST_LIBBILLIARD_DEBUG=$(abspath $(OUTDIR))/libbilliard.so \
		$(abspath $(PY_VENV))/bin/python -m pytest -q -p no:cacheprovider .
$(PY_VENV)/.ready: bindings/python/requirements-test.txt
	rm -rf $(PY_VENV)
	python3 -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

# The C test programs under AddressSanitizer + UBSan, and under memcheck.
test-c-checked: lib
	$(OPTIONAL) "C tests under ASan+UBSan" \
		"echo 'int main(void){return 0;}' | $(CC) -fsanitize=address,undefined -x c - -o /dev/null" \
		env BILLIARD_C_CHECK=asan $(CARGO) test $(CARGO_PROFILE_FLAG) --test c_programs
	$(OPTIONAL) "C tests under valgrind" "valgrind --version" \
		env BILLIARD_C_CHECK=valgrind $(CARGO) test $(CARGO_PROFILE_FLAG) --test c_programs

# The Python peers (billiard, multiprocessing) live in a virtual environment.
BENCH_VENV := target/bench-venv
bench-setup: $(BENCH_VENV)/.ready
$(BENCH_VENV)/.ready: bench/requirements.txt
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet -r bench/requirements.txt
	touch $@

# The release library (and the plugin runner, which install needs).
release-lib:
	$(CARGO) build --release --lib --bin billiard-worker

build/idle_rss: bench/idle_rss.c include/billiard.h release-lib
	@mkdir -p build
	$(CC) $(CPPFLAGS) $(CFLAGS) -O2 $< -o $@ -Ltarget/release -Wl,-rpath,$(abspath target/release) -lbilliard -pthread

bench: bench-setup build/idle_rss
	$(CARGO) bench --bench pool
	$(MAKE) bench-python
	$(MAKE) bench-celery
	$(MAKE) bench-ruby
	$(MAKE) bench-go

bench-quick: bench-setup build/idle_rss
	$(CARGO) bench --bench pool -- --quick
	$(MAKE) bench-python BENCH_PYTHON_FLAGS=--quick
	$(MAKE) bench-celery BENCH_PYTHON_FLAGS=--quick
	$(MAKE) bench-ruby BENCH_FLAGS=--quick
	$(MAKE) bench-go BENCH_FLAGS=-quick

# billiard's Pool API from Python: libbilliard.Pool (pip-installed into the
# benchmark's environment) against billiard and multiprocessing.Pool.
bench-python: bench-setup
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check --force-reinstall \
		--no-deps ./bindings/python
	$(BENCH_VENV)/bin/python bench/python_pool.py $(BENCH_PYTHON_FLAGS)

# Celery on libbilliard against Celery's prefork pool: one redis-server
# (started and stopped by the benchmark), one worker node each.
bench-celery: bench-setup
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check --force-reinstall \
		--no-deps ./bindings/python
	$(BENCH_VENV)/bin/python bench/celery_pool.py $(BENCH_PYTHON_FLAGS)

# Ruby: Billiard.map against Parallel.map (Debian's ruby-parallel), on the
# release library.
bench-ruby: release-lib
	env LIBBILLIARD_PATH=$(abspath target/release/libbilliard.so) ruby bench/ruby_map.rb $(BENCH_FLAGS)

# Go: the typed Map against one os/exec per item, on the release library
# (cgo through its uninstalled billiard.pc).
bench-go: release-lib
	cd bench/go_map && env PKG_CONFIG_PATH=$(abspath target/release/pkgconfig) \
		GOCACHE=$(abspath target/go/cache) GOPATH=$(abspath target/go/path) \
		GOFLAGS=-mod=mod GOPROXY=off go run . $(BENCH_FLAGS)

# Where `make install` puts things (GNU names; DESTDIR for staging).
PREFIX     ?= /usr/local
bindir     ?= $(PREFIX)/bin
libdir     ?= $(PREFIX)/lib
includedir ?= $(PREFIX)/include
pkgconfigdir ?= $(libdir)/pkgconfig
# Everything below comes from Cargo.toml (through cargo) or from the built
# library itself: nothing is repeated by hand.
VERSION = $(shell $(CARGO) pkgid | sed 's/.*[#@]//')
SONAME  = $(shell objdump -p target/release/libbilliard.so | sed -n 's/^ *SONAME *//p')

# libbilliard.so.VERSION is the file; libbilliard.so.ABI (the soname) and
# libbilliard.so (for -lbilliard) are links to it.
# (SONAME is read once the library is built: after install's prerequisite.)
install: release-lib
	@test -n "$(SONAME)" || { echo "no SONAME in target/release/libbilliard.so" >&2; exit 1; }
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(libdir) $(DESTDIR)$(includedir) \
		$(DESTDIR)$(pkgconfigdir)
	install -m 755 target/release/libbilliard.so $(DESTDIR)$(libdir)/libbilliard.so.$(VERSION)
	ln -sf libbilliard.so.$(VERSION) $(DESTDIR)$(libdir)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(libdir)/libbilliard.so
	install -m 644 target/release/libbilliard.a $(DESTDIR)$(libdir)/libbilliard.a
	install -m 644 include/billiard.h $(DESTDIR)$(includedir)/billiard.h
	install -m 755 target/release/billiard-worker $(DESTDIR)$(bindir)/billiard-worker
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(libdir)|' \
		-e 's|@INCLUDEDIR@|$(includedir)|' -e 's|@VERSION@|$(VERSION)|' \
		-e 's|@EXTRA_LIBS@||' billiard.pc.in > $(DESTDIR)$(pkgconfigdir)/billiard.pc

uninstall:
	rm -f $(DESTDIR)$(libdir)/libbilliard.so* $(DESTDIR)$(libdir)/libbilliard.a \
		$(DESTDIR)$(includedir)/billiard.h $(DESTDIR)$(bindir)/billiard-worker \
		$(DESTDIR)$(pkgconfigdir)/billiard.pc

clean:
	rm -rf build
	$(CARGO) clean
