# frozen_string_literal: true

# Helpers shared by the binding's tests.
module TestHelpers
  WORKER = [RbConfig.ruby, File.expand_path("worker.rb", __dir__)].freeze

  # Waits until the block is true, failing the test after +timeout+ s.
  def wait_until(timeout = 30)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    until yield
      flunk "timed out" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep 0.01
    end
  end

  # The parent of process +pid+.
  def parent_of(pid)
    stat = File.read("/proc/#{pid}/stat")
    Integer(stat[(stat.rindex(")") + 2)..].split[1])
  end

  def alive?(pid)
    stat = File.read("/proc/#{pid}/stat")
    stat[stat.rindex(")") + 2] != "Z"
  rescue Errno::ENOENT
    false
  end
end
