# frozen_string_literal: true

# Ruby blocks in supervised workers: Billiard.map, Billiard.each and
# Billiard::Pool.fork, with real forked workers.
require "minitest/autorun"
require "tmpdir"
require_relative "../lib/billiard"
require_relative "helpers"

# Loaded before any pool: the workers, forks of this process, have it.
LOADED_BEFORE = { answer: 42 }.freeze

class MapError < StandardError; end

# A String subclass (Marshal keeps its class).
class TaggedString < String; end

# An exception Marshal cannot carry (it holds an IO).
class UnmarshalableError < StandardError
  def initialize(message)
    super
    @io = $stdout
  end
end

class MapTest < Minitest::Test
  include TestHelpers

  # The pids of this process's children now (none should outlive a map).
  def children
    Dir["/proc/#{Process.pid}/task/*/children"].flat_map { |f| File.read(f).split.map(&:to_i) }
  end

  def test_map_runs_the_block_with_its_closure_in_order
    factor = 3
    captured = { offset: 1 }
    values = Billiard.map((1..50).to_a, workers: 4) { |x| x * factor + captured[:offset] + LOADED_BEFORE[:answer] }
    assert_equal((1..50).map { |x| x * 3 + 1 + 42 }, values)
    assert_equal [], children, "no process of the pool is left"
  end

  def test_workers_are_forks_of_this_process_not_this_process
    pids = Billiard.map((1..8).to_a, workers: 2) { |_| [Process.pid, Process.ppid] }
    assert(pids.none? { |pid, _| pid == Process.pid })
    # Each worker is a fork of the pool's fork server, itself a fork of this process.
    servers = pids.map(&:last).uniq
    assert_equal 1, servers.size
    refute_equal Process.pid, servers.first
    assert_operator pids.map(&:first).uniq.size, :<=, 2
  end

  def test_the_fork_server_has_one_thread
    # A thread in the server (the ffi gem's callback thread, started by
    # making an FFI::Function there) could hold the GVL as the server forks
    # a worker, which then hung in its first call into Ruby.
    pool = Billiard::Pool.fork(workers: 2) { |x| x }
    assert_equal [1], pool.map([1])
    servers = pool.worker_pids.map { |pid| parent_of(pid) }.uniq
    assert_equal 1, servers.size
    assert_equal 1, Dir["/proc/#{servers.first}/task/*"].size, "threads in the fork server"
  ensure
    pool&.close
  end

  def test_values_and_items_cross_as_marshal_data
    items = [nil, 1.5, "bytes\0".b, :sym, [1, [2]], { "k" => Struct.new(:a).new(1).to_a }, 2**80]
    assert_equal items, Billiard.map(items, workers: 2) { |x| x }
  end

  def test_more_items_than_the_window_in_order
    n = Billiard::ForkPool::WINDOW * 2 + 7
    assert_equal (0...n).map { |x| x * 3 }, Billiard.map((0...n).to_a, workers: 2) { |x| x * 3 }
    # More bytes than the window holds: 80 items of 1 MiB, each returned.
    big = Array.new(80) { |i| i.chr * (1 << 20) }
    assert_equal big.map(&:bytesize), Billiard.map(big, workers: 2) { |s| s.reverse }.map(&:bytesize)
  end

  def test_a_failure_stops_items_not_sent_yet
    Dir.mktmpdir do |dir|
      log = File.join(dir, "ran")
      n = Billiard::ForkPool::WINDOW * 3
      assert_raises(MapError) do
        Billiard.map((0...n).to_a, workers: 2) do |x|
          raise MapError, "first" if x.zero?

          File.write(log, "#{x}\n", mode: "a")
        end
      end
      ran = File.exist?(log) ? File.readlines(log).size : 0
      assert_operator ran, :<, n - 1, "every item ran though the first failed"
    end
  end

  def test_strings_keep_their_encoding_and_class
    items = ["bytes\xff".b, "ünï", "ascii".encode("US-ASCII"), "latin".encode("ISO-8859-1")]
    back = Billiard.map(items, workers: 2) { |s| s }
    assert_equal items, back
    assert_equal items.map(&:encoding), back.map(&:encoding)
    # A subclass of String crosses as Marshal data (its class is kept).
    named = Billiard.map([TaggedString.new("t")]) { |s| [s.class.name, s] }.first
    assert_equal ["TaggedString", "t"], [named[0], named[1].to_s]
    assert_instance_of TaggedString, named[1]
    with_ivar = +"ivar"
    with_ivar.instance_variable_set(:@note, 1)
    assert_equal 1, Billiard.map([with_ivar]) { |s| s.instance_variable_get(:@note) }.first
  end

  def test_empty_items_and_no_block
    assert_equal [], Billiard.map([]) { |x| x }
    assert_raises(ArgumentError) { Billiard.map([1]) }
  end

  def test_a_raise_reraises_here_with_the_worker_backtrace_and_cancels_the_rest
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    error = assert_raises(MapError) do
      Billiard.map([1, 2, 3, 4], workers: 2) do |x|
        raise MapError, "item #{x} is bad" if x == 1

        sleep 60
      end
    end
    assert_equal "item 1 is bad", error.message
    # The worker's frames first (the block's line), then the caller's.
    assert_match(/test_map\.rb:\d+:in `block .*in test_a_raise/, error.backtrace.first)
    assert(error.backtrace.any? { |f| f.include?("in `test_a_raise") && !f.include?("block") })
    refute(error.backtrace.any? { |f| f.include?("lib/billiard") }, error.backtrace.join("\n"))
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 30,
                    "the sleeping items were cancelled"
    assert_equal [], children
  end

  def test_an_interrupted_map_leaves_no_process
    thread = Thread.new { Billiard.map([60, 60], workers: 2) { |x| sleep x } }
    thread.report_on_exception = false
    wait_until { children.size >= 1 } # the fork server
    thread.raise(Interrupt)
    assert_raises(Interrupt) { thread.join }
    assert_equal [], children
  end

  def test_per_item_results_keep_every_other_item
    results = Billiard.map([4, 0, 2, 0], workers: 2, per_item: true) { |x| 8 / x }
    assert_equal [true, false, true, false], results.map(&:ok?)
    assert_equal [2, nil, 4, nil], results.map(&:value)
    assert_kind_of ZeroDivisionError, results[1].error
    assert_raises(ZeroDivisionError) { results[3].value! }
    assert_equal 2, results[0].value!
  end

  def test_a_worker_that_dies_gives_worker_lost_for_its_item
    results = Billiard.map([1, 2, 3], workers: 2, per_item: true) do |x|
      Process.kill(:KILL, Process.pid) if x == 2
      x
    end
    assert_equal [1, nil, 3], results.map(&:value)
    assert_kind_of Billiard::WorkerLost, results[1].error
    assert_equal :worker_lost, results[1].error.result.outcome
    assert_equal Signal.list["KILL"], results[1].error.result.signal
    error = assert_raises(Billiard::WorkerLost) { Billiard.map([1], workers: 1) { |_| exit!(3) } }
    assert_equal 3, error.result.exit_code
  end

  def test_hard_time_limit_per_call
    results = Billiard.map([0, 30], workers: 2, per_item: true, hard_time_limit: 1) do |x|
      sleep x
      x
    end
    assert_equal 0, results[0].value
    assert_kind_of Billiard::TimeLimitExceeded, results[1].error
    assert_raises(Billiard::TimeLimitExceeded) { Billiard.map([30], hard_time_limit: 0.5) { |x| sleep x } }
  end

  def test_soft_time_limit_raises_in_the_block
    values = Billiard.map([30], soft_time_limit: 0.5) do |x|
      sleep x
      :slept
    rescue Billiard::SoftTimeLimitExceeded
      :stopped
    end
    assert_equal [:stopped], values
    assert_raises(Billiard::SoftTimeLimitExceeded) { Billiard.map([30], soft_time_limit: 0.5) { |x| sleep x } }
  end

  # This process's address space now, in bytes: a fork starts with all of
  # it, so a hard memory limit is set above it.
  def address_space
    File.read("/proc/self/status")[/^VmSize:\s+(\d+) kB/, 1].to_i * 1024
  end

  def test_hard_memory_limit_per_call
    limit = address_space + (512 << 20)
    results = Billiard.map([1, 2], workers: 2, per_item: true, hard_memory_limit: limit) do |x|
      x == 2 ? ("x" * (2 << 30)).bytesize : x
    end
    assert_equal 1, results[0].value
    assert_kind_of Billiard::MemoryLimitExceeded, results[1].error
    assert_match(/hard memory limit is #{limit} bytes/, results[1].error.message)
    assert_nil results[1].error.result
    assert_match(/test_map\.rb/, results[1].error.backtrace.first)
    assert_raises(Billiard::MemoryLimitExceeded) do
      Billiard.map([2 << 30], hard_memory_limit: address_space + (512 << 20)) { |n| ("x" * n).bytesize }
    end
    # Without a limit a NoMemoryError is the block's own.
    assert_kind_of NoMemoryError, Billiard.map([1], per_item: true) { |_| raise NoMemoryError, "own" }[0].error
  end

  def test_prefetch_reaches_the_pool
    assert_equal [2, 4], Billiard.map([1, 2], workers: 2, prefetch: 1) { |x| x * 2 }
    error = assert_raises(Billiard::Error) { Billiard.map([1], prefetch: 1000) { |x| x } }
    assert_match(/prefetch/, error.message)
  end

  def test_max_tasks_per_worker
    pids = Billiard.map((1..6).to_a, workers: 1, max_tasks_per_worker: 2) { |_| Process.pid }
    assert_equal 3, pids.uniq.size
    assert_equal pids.each_slice(2).map(&:uniq).map(&:size), [1, 1, 1]
  end

  def test_soft_memory_limit_replaces_a_worker_that_grew
    # Each task leaves 64 MiB behind in its worker: over the 32 MiB limit,
    # so every task runs on a fresh worker. In a fresh process: a worker's
    # memory is what it grew by since its fork, and garbage this test
    # process still held from other tests (big strings), freed by the
    # worker's first GC, offset that growth (seen: 9 rounds in 30).
    require "open3"
    script = <<~RUBY
      require "billiard"
      pids = Billiard.map((1..3).to_a, workers: 1, soft_memory_limit: 32 << 20) do |_|
        $kept = "x" * (64 << 20)
        Process.pid
      end
      puts pids.uniq.size
    RUBY
    out, err, status = Open3.capture3({ "RUBYLIB" => File.expand_path("../lib", __dir__) }, RbConfig.ruby, "-e", script)
    assert status.success?, err
    assert_equal "3\n", out
    same = Billiard.map((1..3).to_a, workers: 1, soft_memory_limit: 256 << 20) { |_| Process.pid }
    assert_equal 1, same.uniq.size
  end

  def test_what_marshal_cannot_carry_is_an_error_of_that_item
    results = Billiard.map([1, 2, 3], workers: 2, per_item: true) do |x|
      case x
      when 2 then proc { x }
      when 3 then raise UnmarshalableError, "holds an IO"
      else x
      end
    end
    assert_equal 1, results[0].value
    assert_kind_of TypeError, results[1].error
    assert_kind_of Billiard::RemoteError, results[2].error
    assert_equal "UnmarshalableError", results[2].error.remote_class
    assert_match(/holds an IO/, results[2].error.message)
    assert_match(/test_map\.rb/, results[2].error.backtrace.first)
  end

  def test_each_runs_the_block_for_its_effects_and_returns_the_items
    Dir.mktmpdir do |dir|
      items = %w[a b c]
      assert_same items, Billiard.each(items, workers: 2) { |x| File.write(File.join(dir, x), x.upcase) }
      assert_equal %w[A B C], items.map { |x| File.read(File.join(dir, x)) }
      results = Billiard.each([1, 0], per_item: true) { |x| 1 / x }
      assert_equal [true, false], results.map(&:ok?)
    end
  end

  def test_fork_pool_takes_many_submits
    factor = 2
    pool = Billiard::Pool.fork(workers: 2) { |x| x * factor }
    futures = (1..200).map { |x| pool.submit(x) }
    assert_equal (1..200).map { |x| x * 2 }, futures.map(&:value)
    assert_equal [2, 4, 6], pool.map([1, 2, 3])
    assert_equal 7, pool.submit(3.5).value(30)
    failing = pool.submit(nil)
    assert_raises(NoMethodError) { failing.value }
    assert_kind_of NoMethodError, failing.result.error
    assert_equal [1, 2], pool.each([1, 2])
    stats = pool.stats
    assert_equal 2, stats[:workers]
    assert_equal 0, stats[:queued]
  ensure
    pool&.close
  end

  def test_fork_pool_resize_restart_workers_terminate
    pool = Billiard::Pool.fork(workers: 1) { |x| x == :sleep ? sleep(60) : Process.pid }
    first = pool.submit(:pid).value(30)
    pool.resize(3)
    wait_until { pool.stats[:workers] == 3 }
    assert_equal 3, pool.workers.size
    pool.restart
    wait_until { !pool.worker_pids.include?(first) && pool.stats[:workers] == 3 }
    refute_equal first, pool.submit(:pid).value(30)
    sleeper = pool.submit(:sleep)
    wait_until { pool.pool.started?(sleeper.id) }
    pids = pool.worker_pids
    pool.terminate
    assert_raises(Billiard::Abandoned) { sleeper.value(30) }
    assert(pids.none? { |pid| alive?(pid) })
    assert_raises(Billiard::ClosedError) { pool.submit(1) }
    pool.close
    assert pool.closed?
    assert_equal [], children
  end

  def test_fork_pool_future_cancel_and_per_task_limit
    pool = Billiard::Pool.fork(workers: 1) { |x| sleep x }
    slow = pool.submit(60)
    assert slow.cancel
    assert_raises(Billiard::Cancelled) { slow.value(30) }
    assert_raises(Billiard::TimeLimitExceeded) { pool.submit(60, hard_time_limit: 0.5).value(30) }
    assert_raises(Billiard::TimeoutError) { pool.submit(2).value(0.05) }
  ensure
    pool&.close(wait: false)
  end

  def test_fork_pool_map_raises_and_the_pool_lives_on_with_nothing_left_behind
    pool = Billiard::Pool.fork(workers: 2) do |x|
      case x
      when 0 then raise MapError, "zero"
      when 60 then sleep x
      when -1 then nil
      else x
      end
    end
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    # Items before the failure whose value is nil count as done too.
    assert_raises(MapError) { pool.map([-1, 0, 60, 60, 1]) }
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 30
    assert_equal 0, pool.stats[:uncollected], "the cancelled tasks' results were taken"
    assert_equal [1, 2], pool.map([1, 2])
  ensure
    pool&.close(wait: false)
  end

  def test_readme_map_example_runs
    require "open3"
    readme = File.read(File.expand_path("../README.md", __dir__))
    code = readme.split("```ruby\n").map { |block| block.split("```", 2)[0] }.find { |b| b.include?("Billiard.map(") }
    variable, expected = code[/^(\w+) = Billiard\.map.*# => (.*)$/, 0].then { |line| [line[/^\w+/], line[/# => (.*)$/, 1]] }
    env = { "RUBYLIB" => File.expand_path("../lib", __dir__) }
    out, err, status = Open3.capture3(env, RbConfig.ruby, "-e", "#{code}\np #{variable}")
    assert status.success?, err
    assert_equal "#{expected}\n", out
  end

  def test_a_map_inside_a_block_is_an_error_not_a_crash
    results = Billiard.map([1], per_item: true) { |x| Billiard.map([x]) { |y| y } }
    assert_kind_of Billiard::Error, results[0].error
    assert_match(/cannot start inside a worker/, results[0].error.message)
    refute Billiard.forked_worker?
  end

  def test_idle_workers_stop_at_once_not_after_the_kill_grace
    # Ruby's SIGTERM handler never runs in a worker waiting in the library
    # for its next task: a stop waited for the SIGKILL after the grace.
    pool = Billiard::Pool.fork(workers: 2, kill_grace: 60) { |x| x }
    assert_equal [1], pool.map([1])
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    pool.close(wait: false)
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 30
  end

  def test_a_process_fork_inside_a_block_loses_that_item_only
    # Ruby aborts when a process the library forked forks again.
    results = Billiard.map([1, 2], workers: 2, per_item: true) do |x|
      Process.wait(Process.fork { exit!(0) }) if x == 1
      x
    end
    assert_kind_of Billiard::WorkerLost, results[0].error
    assert_equal 2, results[1].value
  end

  def test_fork_pool_needs_a_block
    assert_raises(ArgumentError) { Billiard::Pool.fork(workers: 1) }
  end
end
