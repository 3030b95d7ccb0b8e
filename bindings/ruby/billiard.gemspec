# frozen_string_literal: true

# `gem build billiard.gemspec` in the repository first copies the crate
# into ext/billiard/crate/ (the files cargo needs: the same list as the
# Python package's sdist, in bindings/python/setup.py), so the gem builds
# libbilliard with cargo when it is installed, away from the repository.
require "fileutils"

CRATE = %w[Cargo.toml Cargo.lock build.rs billiard.map billiard.pc.in README.md src benches].freeze

here = __dir__
repository = File.expand_path("../..", here)
staged = File.join(here, "ext", "billiard", "crate")
if File.exist?(File.join(repository, "Cargo.toml")) && File.exist?(File.join(repository, "billiard.map"))
  FileUtils.rm_rf(staged)
  FileUtils.mkdir_p(staged)
  CRATE.each { |name| FileUtils.cp_r(File.join(repository, name), staged) }
end

Gem::Specification.new do |spec|
  spec.name = "billiard"
  spec.version = "0.1.0"
  spec.summary = "Ruby binding of libbilliard, a supervised process pool"
  spec.description = "Supervised worker processes for Ruby: Billiard.map { } runs a block in " \
                     "forks of the caller, with time and memory limits and an outcome per item. " \
                     "Installing builds libbilliard with cargo."
  spec.license = "BSD-3-Clause"
  spec.authors = ["billiard developers"]
  spec.files = Dir.chdir(here) do
    %w[lib/billiard.rb lib/billiard/fork_pool.rb README.md ext/billiard/extconf.rb] +
      Dir.glob("ext/billiard/crate/**/*", File::FNM_DOTMATCH).select { |f| File.file?(f) }
  end
  spec.extensions = ["ext/billiard/extconf.rb"]
  spec.required_ruby_version = ">= 3.1"
  spec.homepage = "https://github.com/billiard/billiard"
  spec.add_dependency "ffi", "~> 1.15"
end
