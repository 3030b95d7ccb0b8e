# frozen_string_literal: true

# `gem build billiard.gemspec` in the repository first copies the crate
# into ext/billiard/crate/ (the files bindings/crate-files lists, as the
# Python sdist does), so the gem builds libbilliard with cargo when it is
# installed, away from the repository.
require "fileutils"

here = __dir__
repository = File.expand_path("../..", here)
staged = File.join(here, "ext", "billiard", "crate")
crate_files = File.join(repository, "bindings", "crate-files")
if File.exist?(crate_files)
  FileUtils.rm_rf(staged)
  FileUtils.mkdir_p(staged)
  File.readlines(crate_files, chomp: true).reject { |line| line.empty? || line.start_with?("#") }.each do |name|
    FileUtils.cp_r(File.join(repository, name), staged)
  end
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
