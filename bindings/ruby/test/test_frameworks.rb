# frozen_string_literal: true

# What frameworks need, through the Ruby binding: notices, task status,
# cancel with a signal, a signal to a task, restart, resize and the worker
# listing, worker hooks, and pools whose workers are forks of this process
# (Pool.new(handler: ...)).
require "minitest/autorun"
require "tmpdir"
require_relative "../lib/billiard"
require_relative "helpers"

class FrameworksTest < Minitest::Test
  include TestHelpers

  def test_started_notice_and_status_before_the_result
    Billiard::Pool.open(WORKER, workers: 2, notices: true) do |pool|
      assert_equal [], pool.notices
      id = pool.submit("sleep:1", tag: 5)
      wait_until { pool.started?(id) }
      status = pool.task_status(id)
      assert_equal :running, status.state
      assert_equal 5, status.tag
      assert_in_delta Time.now.to_f, status.started.to_f, 30
      # The status reads the progress page; the notice comes from the ACK
      # frame, which the supervisor may read a moment later.
      notices = []
      wait_until { notices.concat(pool.notices).any? }
      assert_equal [[:started, id, 5, status.pid]], notices.map { |n| [n.kind, n.task_id, n.tag, n.pid] }
      assert_equal [], pool.notices
      assert_raises(Billiard::TimeoutError) { pool.wait(0.01) } # a notice is no result
      assert_equal status.pid, pool.wait_task(id, 30).pid
      ids = Array.new(40) { pool.submit("echo:x") }
      ids.each { |i| pool.wait_task(i, 30) }
      assert_equal ids.sort, pool.notices.select { |n| n.kind == :started }.map(&:task_id).sort
    end
  end

  def test_notices_switched_while_the_pool_runs
    Billiard::Pool.open(WORKER, workers: 1) do |pool|
      pool.wait_task(pool.submit("echo:quiet"), 30)
      assert_equal [], pool.notices
      pool.set_notices(started: true)
      id = pool.submit("sleep:3")
      seen = []
      wait_until { seen.concat(pool.notices).any? }
      assert_equal [[:started, id]], seen.map { |n| [n.kind, n.task_id] }
      assert_equal :running, pool.task_status(id).state # noticed at its start
      pool.wait_task(id, 30)
      pool.set_notices
      pool.wait_task(pool.submit("echo:quiet again"), 30)
      assert_equal [], pool.notices
    end
  end

  def test_soft_limit_notice
    Billiard::Pool.open(WORKER, workers: 1, notices: true) do |pool|
      id = pool.submit("soft:10", soft_time_limit: 0.2)
      assert_equal "reached", pool.wait_task(id, 30).value
      assert_equal %i[soft_limit started], pool.notices.select { |n| n.task_id == id }.map(&:kind).sort
    end
  end

  def test_cancel_with_sigkill_and_a_signal_without_cancel
    Billiard::Pool.open(WORKER, workers: 1, kill_grace: 60) do |pool|
      id = pool.submit("stubborn:60")
      wait_until { pool.started?(id) }
      sleep 0.3 # its TERM trap is set by now
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      assert pool.cancel(id, signal: :KILL)
      result = pool.wait_task(id, 30)
      assert_equal :cancelled, result.outcome
      assert_equal Signal.list["KILL"], result.signal
      assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 30

      id = pool.submit("sleep:30")
      queued = pool.submit("echo:later")
      wait_until { pool.started?(id) }
      refute pool.signal(queued, :TERM) # not running: nothing sent
      assert pool.signal(id, "SIGTERM")
      result = pool.wait_task(id, 30)
      assert_equal :worker_lost, result.outcome
      assert_equal Signal.list["TERM"], result.signal
      assert_equal "later", pool.wait_task(queued, 30).value
      refute pool.signal(id, :TERM)
    end
  end

  def test_worker_listing_restart_and_resize
    Billiard::Pool.open(WORKER, workers: 2) do |pool|
      id = pool.submit("sleep:1")
      wait_until { pool.started?(id) }
      running = pool.workers.select { |w| w.task_id == id }
      assert_equal 1, running.size
      assert_equal :busy, running[0].state
      before = pool.worker_pids
      pool.restart
      assert pool.wait_task(id, 30).ok?
      wait_until { (pool.worker_pids & before).empty? && pool.worker_pids.size == 2 }
      pool.resize(3)
      wait_until { pool.workers.size == 3 }
    end
  end

  def test_hooks_run_after_fork_and_at_an_orderly_exit
    %i[spawn forkserver].each do |method|
      Dir.mktmpdir do |dir|
        last = nil
        crashed = nil
        Billiard::Pool.open(WORKER, workers: 1, start_method: method, env: { "TEST_HOOKS" => dir },
                                    max_tasks_per_worker: 2) do |pool|
          pid = Integer(pool.wait_task(pool.submit("pid"), 30).value)
          assert_equal pid, Integer(pool.wait_task(pool.submit("hooked"), 30).value)
          wait_until { File.exist?(File.join(dir, "atexit-#{pid}")) }
          crashed = pool.wait_task(pool.submit("crash"), 30)
          assert_equal :worker_lost, crashed.outcome
          last = Integer(pool.wait_task(pool.submit("pid"), 30).value)
        end
        wait_until { File.exist?(File.join(dir, "atexit-#{last}")) }
        refute File.exist?(File.join(dir, "atexit-#{crashed.pid}"))
      end
    end
  end

  def test_a_failing_after_fork_hook_is_a_failed_start_with_its_message
    error = assert_raises(Billiard::SpawnError) do
      Billiard::Pool.new(workers: 1, handler: ->(data) { data },
                         after_fork: -> { raise "no database here" })
    end
    assert_match(/no database here/, error.message)
  end

  def test_soft_limit_raises_in_the_task_when_asked
    Billiard::Pool.open(workers: 1, handler: ->(s) { sleep(Float(s)) && "slept" }, soft_limit_raises: true,
                        soft_time_limit: 0.3) do |pool|
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      result = pool.wait_task(pool.submit("5"), 30)
      assert_equal :failed, result.outcome
      assert_match(/SoftTimeLimitExceeded/, result.data)
      assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 4.5
      assert_equal "slept", pool.wait_task(pool.submit("0.01"), 30).value
    end
  end

  LOADED = { value: "loaded before the pool" } # rubocop:disable Style/MutableConstant

  def test_handler_pools_fork_this_process_with_its_closures
    Dir.mktmpdir do |dir|
      secret = "a closure's value"
      hooked = nil
      handler = lambda do |data|
        case data
        when "data" then "#{LOADED[:value]} / #{secret}"
        when "pid" then Process.pid.to_s
        when "hooked" then hooked.to_s
        when "sleep"
          sleep 3
          "slept"
        else data.upcase
        end
      end
      pool = Billiard::Pool.new(workers: 2, handler: handler, after_fork: -> { hooked = Process.pid },
                                at_exit: -> { File.write(File.join(dir, "atexit-#{Process.pid}"), "") })
      workers = []
      begin
        LOADED[:value] = "changed after the pool"
        assert_equal "loaded before the pool / a closure's value", pool.wait_task(pool.submit("data"), 30).value
        pid = Integer(pool.wait_task(pool.submit("pid"), 30).value)
        assert_equal pid, Integer(pool.wait_task(pool.submit("hooked"), 30).value)
        server = parent_of(pid)
        assert_equal Process.pid, parent_of(server)
        slow = Array.new(2) { pool.submit("sleep") }
        queued = Array.new(10) { |i| pool.submit("q#{i}") }
        wait_until { slow.all? { |id| pool.started?(id) } }
        Process.kill(:KILL, server)
        slow.each { |id| assert_equal :worker_lost, pool.wait_task(id, 30).outcome }
        assert_equal Array.new(10) { |i| "Q#{i}" }, queued.map { |id| pool.wait_task(id, 30).value }
        pid = Integer(pool.wait_task(pool.submit("pid"), 30).value)
        refute_equal server, parent_of(pid)
        assert_equal Process.pid, parent_of(parent_of(pid))
        assert_match(/\Achanged after the pool/, pool.wait_task(pool.submit("data"), 30).value)
        workers = pool.worker_pids
      ensure
        pool.close
      end
      workers.each { |p| refute alive?(p) }
      wait_until { workers.all? { |p| File.exist?(File.join(dir, "atexit-#{p}")) } }
    end
  end
end
