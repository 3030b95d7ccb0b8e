# frozen_string_literal: true

# Builds libbilliard with cargo when the gem is installed (gem install
# --local ./billiard-*.gem): no C extension, the shared library the ffi gem
# loads. The crate is in crate/ (the gemspec put it there). This writes the
# Makefile that RubyGems runs: `make` builds the release library, `make
# install` puts it at billiard/libbilliard.so on the gem's load path (where
# lib/billiard.rb looks first) and removes cargo's build folder.
require "rbconfig"
require "shellwords"

cargo = ENV.fetch("CARGO", "cargo")
unless system(cargo, "--version", out: File::NULL, err: File::NULL)
  abort "billiard: cargo (Rust 1.85 or newer) is needed to build libbilliard; " \
        "install it (https://rustup.rs or your system's package) and install the gem again"
end

here = __dir__
unless File.exist?(File.join(here, "crate", "Cargo.toml"))
  abort "billiard: this gem carries no crate (it was built outside the billiard repository); " \
        "build it with `gem build billiard.gemspec` in bindings/ruby of a checkout"
end
dest = RbConfig::CONFIG.fetch("sitearchdir")
File.write(File.join(here, "Makefile"), <<~MAKE)
  CARGO = #{cargo.shellescape}
  TARGET = #{File.join(here, "target").shellescape}
  DEST = #{dest.shellescape}

  all: libbilliard.so

  libbilliard.so:
  \t$(CARGO) build --release --lib --manifest-path crate/Cargo.toml --target-dir $(TARGET)
  \tcp $(TARGET)/release/libbilliard.so libbilliard.so

  install: libbilliard.so
  \tmkdir -p $(DESTDIR)$(DEST)/billiard
  \tcp libbilliard.so $(DESTDIR)$(DEST)/billiard/libbilliard.so
  \trm -rf $(TARGET) libbilliard.so

  clean:
  \trm -rf $(TARGET) libbilliard.so

  .PHONY: all install clean
MAKE
