# frozen_string_literal: true

# The test worker program, written with Billiard.worker_main. Commands:
# "echo:X" replies X, "pid" its pid, "fail:MSG" raises MSG, "crash"
# SIGKILLs itself, "exit:N" exits with N, "sleep:S" sleeps S seconds,
# "soft:S" polls soft_limit_reached? for S seconds at most.
require_relative "../lib/billiard"

exit(Billiard.worker_main do |payload|
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
