# frozen_string_literal: true

# Helpers shared by the binding's tests.
module TestHelpers
  WORKER = [RbConfig.ruby, File.expand_path("worker.rb", __dir__)].freeze

  def alive?(pid)
    stat = File.read("/proc/#{pid}/stat")
    stat[stat.rindex(")") + 2] != "Z"
  rescue Errno::ENOENT
    false
  end
end
