# frozen_string_literal: true

# The test worker program, written with Billiard.worker_main. Commands:
# "echo:X" replies X, "pid" its pid, "fail:MSG" raises MSG, "crash"
# SIGKILLs itself, "exit:N" exits with N, "sleep:S" sleeps S seconds,
# "soft:S" polls soft_limit_reached? for S seconds at most, "stubborn:S"
# ignores SIGTERM and sleeps S seconds, "hooked" replies the pid the
# after-fork hook ran in. With TEST_HOOKS=DIR, the at-exit hook creates
# DIR/atexit-PID.
require_relative "../lib/billiard"

hooked = 0
hooks = {}
if ENV["TEST_HOOKS"]
  hooks[:after_fork] = -> { hooked = Process.pid }
  hooks[:at_exit] = -> { File.write(File.join(ENV["TEST_HOOKS"], "atexit-#{Process.pid}"), "") }
end

exit(Billiard.worker_main(**hooks) do |payload|
  command, arg = payload.split(":", 2)
  case command
  when "echo" then arg
  when "pid" then Process.pid.to_s
  when "fail" then raise ArgumentError, arg
  when "crash" then Process.kill(:KILL, Process.pid)
  when "exit" then exit!(Integer(arg))
  when "sleep"
    sleep(Float(arg))
    "slept"
  when "stubborn"
    trap("TERM", "IGNORE")
    sleep(Float(arg))
    "slept"
  when "hooked" then hooked.to_s
  when "soft"
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + Float(arg)
    reached = false
    until reached || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      reached = Billiard.soft_limit_reached?
      sleep(0.005)
    end
    reached ? "reached" : "not reached"
  else raise ArgumentError, "unknown command #{command.inspect}"
  end
end)
