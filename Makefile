# The two commands of the README:
#   make quickstart   build the library and run examples/quickstart.c
#   make test         build the library and run every test (Rust and C)
CARGO   ?= cargo
CC      ?= cc
PROFILE ?= debug
LIBDIR  := target/$(PROFILE)
CFLAGS  ?= -std=c99 -Wall -Wextra -Werror -pedantic -O1 -g
CPPFLAGS += -D_POSIX_C_SOURCE=200809L -Iinclude
LDLIBS  := -L$(LIBDIR) -Wl,-rpath,$(abspath $(LIBDIR)) -lbilliard -pthread
CARGO_PROFILE_FLAG := $(if $(filter release,$(PROFILE)),--release,)

.PHONY: lib quickstart examples test clean

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

clean:
	rm -rf build
	$(CARGO) clean
