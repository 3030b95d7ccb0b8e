# frozen_string_literal: true

# Tests of the Ruby binding against the real library and real workers.
require "minitest/autorun"
require_relative "../lib/billiard"
require_relative "helpers"

class PoolTest < Minitest::Test
  include TestHelpers

  def with_pool(**options, &block)
    Billiard::Pool.open(WORKER, workers: 2, **options, &block)
  end

  def test_abi_matches_the_loaded_library
    assert_equal Billiard::ABI_VERSION, Billiard::Lib.billiard_abi_version
    assert_match(/\A\d+\.\d+\.\d+\z/, Billiard.version)
  end

  def test_round_trip_in_a_block
    value = with_pool do |pool|
      result = pool.wait_task(pool.submit("echo:hello"), 30)
      assert_equal :ok, result.outcome
      assert_equal Encoding::BINARY, result.data.encoding
      assert_operator result.pid, :>, 0
      result.value
    end
    assert_equal "hello", value
  end

  def test_every_task_gets_exactly_one_result
    with_pool do |pool|
      ids = (0...300).to_h { |i| [pool.submit("echo:#{i}", tag: i), i] }
      seen = {}
      pool.each_result(60) do |result|
        refute seen.key?(result.task_id)
        seen[result.task_id] = result
      end
      assert_equal ids.keys.sort, seen.keys.sort
      ids.each do |id, i|
        assert_equal i.to_s, seen[id].data
        assert_equal i, seen[id].tag
      end
      assert_nil pool.wait(1)
    end
  end

  def test_payloads_are_bytes_whatever_their_encoding
    with_pool do |pool|
      assert_equal "h\u00e9llo".b, pool.wait_task(pool.submit("echo:h\u00e9llo"), 30).value
    end
  end

  def test_cancel
    with_pool(workers: 1) do |pool|
      running = pool.submit("sleep:30")
      queued = pool.submit("echo:never")
      assert pool.cancel(queued)
      assert_equal :cancelled, pool.wait_task(queued, 30).outcome
      refute pool.cancel(queued) # finished: its result stands
      assert pool.cancel(running)
      assert_equal :cancelled, pool.wait_task(running, 30).outcome
    end
  end

  def test_a_wait_sees_an_interrupt
    # The wait is sliced, so Thread#raise lands within a slice, not when
    # the 30 s task ends.
    with_pool(workers: 1) do |pool|
      id = pool.submit("sleep:30")
      waiter = Thread.current
      Thread.new { sleep 0.2; waiter.raise(Interrupt) }
      start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      assert_raises(Interrupt) { pool.wait_task(id, 60) }
      assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - start, :<, 10
      assert pool.cancel(id)
    end
  end

  def test_failure_is_an_outcome
    with_pool do |pool|
      result = pool.wait_task(pool.submit("fail:boom"), 30)
      assert_equal :failed, result.outcome
      assert_includes result.data, "ArgumentError: boom"
      error = assert_raises(Billiard::TaskError) { result.value }
      assert_same result, error.result
    end
  end

  def test_worker_crash_is_worker_lost_and_the_pool_goes_on
    with_pool(workers: 1) do |pool|
      before = pool.wait_task(pool.submit("pid"), 30).value
      result = pool.wait_task(pool.submit("crash"), 30)
      assert_equal :worker_lost, result.outcome
      assert_equal Signal.list["KILL"], result.signal
      assert_equal(-1, result.exit_code)
      assert_equal 3, pool.wait_task(pool.submit("exit:3"), 30).exit_code
      after = pool.wait_task(pool.submit("pid"), 30).value
      refute_equal before, after
      assert_operator pool.stats[:restarts], :>=, 2
    end
  end

  def test_time_limits
    with_pool(workers: 1, hard_time_limit: 0.3, soft_time_limit: 0.1, kill_grace: 0.5) do |pool|
      assert_equal "reached", pool.wait_task(pool.submit("soft:20"), 30).value
      assert_equal :time_limit, pool.wait_task(pool.submit("sleep:30"), 30).outcome
      id = pool.submit("sleep:0.5", hard_time_limit: Float::INFINITY, soft_time_limit: Float::INFINITY)
      assert_equal "slept", pool.wait_task(id, 30).value
    end
  end

  def test_io_works_with_io_select
    with_pool do |pool|
      assert_kind_of IO, pool.io
      pool.submit("echo:x")
      readable, = IO.select([pool.io], nil, nil, 30)
      assert_equal [pool.io], readable
      assert_equal "x", pool.wait(1).data
    end
  end

  def test_errors_carry_code_and_message
    error = assert_raises(Billiard::SpawnError) do
      Billiard::Pool.new(["/nonexistent/ruby-billiard-worker"], workers: 1)
    end
    assert_equal(-6, error.code)
    assert_equal "BILLIARD_ESPAWN", error.name
    assert_includes error.message, "/nonexistent/ruby-billiard-worker"
    with_pool do |pool|
      slow = pool.submit("sleep:5")
      timeout = assert_raises(Billiard::TimeoutError) { pool.wait_task(slow, 0.05) }
      assert_equal(-2, timeout.code)
      assert pool.cancel(slow)
      assert_raises(Billiard::NotFoundError) { pool.wait_task(424_242, 1) }
      assert_raises(Billiard::Error) { pool.submit("x", soft_time_limit: 2, hard_time_limit: 1) }
    end
    pool = Billiard::Pool.new(WORKER, workers: 1)
    pool.close
    closed = assert_raises(Billiard::ClosedError) { pool.submit("echo:late") }
    assert_equal(-3, closed.code)
  end

  def test_waiting_does_not_hold_the_gvl
    with_pool do |pool|
      longest = 0.0
      stop = false
      spinner = Thread.new do
        last = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        until stop
          now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
          longest = [longest, now - last].max
          last = now
        end
      end
      sleep 0.05
      longest = 0.0
      assert_equal "slept", pool.wait_task(pool.submit("sleep:1"), 30).value
      stop = true
      spinner.join
      # Ruby switches threads every 100 ms; a wait holding the GVL would
      # stop the spinner for a whole 200 ms slice.
      assert_operator longest, :<, 0.15
    end
  end

  def test_close_reaps_every_worker_and_is_idempotent
    pool = Billiard::Pool.new(WORKER, workers: 2)
    pids = pool.worker_pids
    assert_equal 2, pids.size
    assert(pids.all? { |pid| alive?(pid) })
    pool.close
    pool.close
    assert pool.closed?
    refute(pids.any? { |pid| alive?(pid) })
  end

  def test_a_block_that_raises_stops_the_workers_at_once
    pids = nil
    start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    assert_raises(RuntimeError) do
      with_pool do |pool|
        pids = pool.worker_pids
        pool.submit("sleep:30")
        raise "out"
      end
    end
    # The 30 s task was not waited for.
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - start, :<, 20
    refute(pids.any? { |pid| alive?(pid) })
  end

  # One close rule: close terminates (waking every waiter and blocked
  # submit), waits for the calls in flight, then frees; later calls raise
  # ClosedError. Without it this crashed or corrupted the heap.
  def test_close_while_other_threads_wait_and_submit_never_frees_the_pool_under_them
    5.times do
      pool = Billiard::Pool.new(WORKER, workers: 2, max_queued: 4)
      pids = pool.worker_pids
      errors = Queue.new
      threads = Array.new(6) do |i|
        Thread.new do
          loop do
            if i.even?
              id = pool.submit("sleep:0.05")
              begin
                pool.wait_task(id, 5)
              rescue Billiard::NotFoundError
                nil # another thread's pool.wait took it first, as it may
              end
            else
              begin
                pool.wait(0.001)
              rescue Billiard::TimeoutError
                nil
              end
              pool.stats
              pool.worker_pids
            end
          end
        rescue Billiard::ClosedError
          nil
        rescue Exception => e # rubocop:disable Lint/RescueException
          errors << e
        end
      end
      sleep 0.2
      # Several threads close at once; each returns once the pool is freed.
      closers = Array.new(3) { Thread.new { pool.close(wait: false) } }
      closers.each { |c| assert c.join(30), "a close hung" }
      threads.each { |t| assert t.join(30), "a thread hung after close" }
      assert errors.empty?, errors.size.times.map { errors.pop }.inspect
      assert_raises(Billiard::ClosedError) { pool.submit("echo:late") }
      assert_raises(Billiard::ClosedError) { pool.wait(0) }
      refute(pids.any? { |pid| alive?(pid) })
    end
  end

  def test_finalizer_frees_a_dropped_pool
    # Made on another thread, so that no stack slot of this one keeps it.
    pids = Thread.new { Billiard::Pool.new(WORKER, workers: 2).worker_pids }.value
    assert_equal 2, pids.size
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 30
    while pids.any? { |pid| alive?(pid) } && Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      GC.start(full_mark: true, immediate_sweep: true)
      sleep 0.02
    end
    refute(pids.any? { |pid| alive?(pid) }, "workers #{pids} outlived their dropped pool")
  end

  def test_forkserver
    with_pool(start_method: :forkserver) do |pool|
      ids = %w[a b].map { |word| pool.submit("echo:#{word}") }
      assert_equal %w[a b], ids.map { |id| pool.wait_task(id, 30).value }
    end
  end

  def test_idle_worker_programs_stop_at_once_not_after_the_kill_grace
    pool = Billiard::Pool.new(WORKER, workers: 2, kill_grace: 60)
    assert_equal "x", pool.wait_task(pool.submit("echo:x"), 30).value
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    pool.close(wait: false)
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 30
  end

  def test_worker_main_waits_for_the_ffi_callback_thread_to_park
    # In a fresh process, the first FFI::Function starts the ffi gem's
    # callback thread, which runs for a moment before it parks; a
    # :forkserver program must not be forked by the library before then.
    require "open3"
    script = <<~RUBY
      require "billiard"
      FFI::Function.new(:int, [:int]) { |x| x }
      Billiard.settle_ffi_dispatcher
      puts Thread.list.select { |t| t.name == "FFI Callback Dispatcher" }.map(&:status).inspect
    RUBY
    out, err, status = Open3.capture3({ "RUBYLIB" => File.expand_path("../lib", __dir__) }, RbConfig.ruby, "-e", script)
    assert status.success?, err
    assert_equal "[\"sleep\"]\n", out
  end

  def test_readme_example_runs
    require "open3"
    require "tmpdir"
    readme = File.read(File.expand_path("../README.md", __dir__))
    code = readme.split("```ruby\n").map { |block| block.split("```", 2)[0] }.find { |b| b.include?("# worker.rb") }
    host, worker = code.split("# worker.rb\n")
    Dir.mktmpdir do |dir|
      File.write(File.join(dir, "host.rb"), host)
      File.write(File.join(dir, "worker.rb"), worker)
      env = { "RUBYLIB" => File.expand_path("../lib", __dir__) }
      out, err, status = Open3.capture3(env, RbConfig.ruby, "host.rb", chdir: dir)
      assert status.success?, err
      assert_equal "ok HELLO\nok WORLD\n", out
    end
  end
end
