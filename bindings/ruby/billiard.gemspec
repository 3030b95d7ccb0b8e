# frozen_string_literal: true

Gem::Specification.new do |spec|
  spec.name = "billiard"
  spec.version = "0.1.0"
  spec.summary = "Ruby binding of libbilliard, a supervised process pool"
  spec.license = "BSD-3-Clause"
  spec.authors = ["billiard developers"]
  spec.files = ["lib/billiard.rb", "lib/billiard/fork_pool.rb", "README.md"]
  spec.required_ruby_version = ">= 3.1"
  spec.homepage = "https://github.com/billiard/billiard"
  spec.add_dependency "ffi", "~> 1.15"
end
