# frozen_string_literal: true

# Ruby binding of libbilliard, a supervised process pool, through the ffi
# gem. Workers are separate programs (Ruby ones call Billiard.worker_main),
# or, with Pool.new(handler: ...), forks of this process: a fork server
# made with Process.fork serves them, so the handler block and everything
# loaded before the pool came along. Every task ends with exactly one
# Billiard::Result. Waits are attached with `blocking: true`, so they
# release the GVL; the library calls into Ruby from its own thread only to
# fork a replacement fork server (handler: pools).
require "etc"
require "ffi"
require "monitor"

module Billiard
  # The ABI this binding is written for (BILLIARD_ABI_VERSION / BILLIARD_SONAME).
  ABI_VERSION = 100
  SONAME = "libbilliard.so.0.1"

  # The library to load: $LIBBILLIARD_PATH if set; else the copy the gem
  # built when it was installed (billiard/libbilliard.so next to this file
  # or on the load path); else the soname, found by the system loader
  # (after `make install`).
  def self.library_path
    return ENV["LIBBILLIARD_PATH"] if ENV["LIBBILLIARD_PATH"]

    built = [__dir__, *$LOAD_PATH].map { |dir| File.join(dir.to_s, "billiard", "libbilliard.so") }
    built.find { |path| File.file?(path) } || SONAME
  end

  # The C API, from Billiard.library_path.
  module Lib
    extend FFI::Library
    ffi_lib(Billiard.library_path)

    class TaskOpts < FFI::Struct
      layout :struct_size, :uint32, :flags, :uint32, :tag, :uint64,
             :soft_time_limit_ms, :int64, :hard_time_limit_ms, :int64
    end

    class Stats < FFI::Struct
      layout :struct_size, :uint32, :workers, :uint32, :busy, :uint32, :idle, :uint32,
             :target, :uint32, :reserved, :uint32, :queued, :uint64, :running, :uint64,
             :uncollected, :uint64, :outcomes, [:uint64, 8], :restarts, :uint64,
             :recycles, :uint64
    end

    class WorkerInfo < FFI::Struct
      layout :pid, :int32, :state, :int32, :task_id, :uint64, :tasks_done, :uint64,
             :rss_bytes, :uint64
    end

    class Notice < FFI::Struct
      layout :kind, :int32, :pid, :int32, :task_id, :uint64, :tag, :uint64,
             :time_us, :uint64, :elapsed_us, :uint64
    end

    class TaskInfo < FFI::Struct
      layout :struct_size, :uint32, :state, :int32, :pid, :int32, :reserved, :int32,
             :tag, :uint64, :started_us, :uint64
    end

    callback :handler, %i[pointer pointer size_t pointer], :int
    callback :after_fork, [:pointer], :int
    callback :at_exit, [:pointer], :void
    callback :fork_server, %i[pointer int], :int

    class WorkerHooks < FFI::Struct
      layout :struct_size, :uint32, :reserved, :uint32, :after_fork, :after_fork,
             :at_exit, :at_exit, :ctx, :pointer
    end

    attach_function :billiard_version, [], :string
    attach_function :billiard_abi_version, [], :int
    attach_function :billiard_errname, [:int], :string
    attach_function :billiard_strerror, [:int], :string
    attach_function :billiard_last_error, [], :string
    attach_function :billiard_config_new, [:pointer], :int
    attach_function :billiard_config_free, [:pointer], :void
    attach_function :billiard_config_set_workers, %i[pointer uint32], :int
    attach_function :billiard_config_set_start_method, %i[pointer int], :int
    attach_function :billiard_config_set_worker_argv, %i[pointer pointer size_t], :int
    attach_function :billiard_config_set_worker_env, %i[pointer string string], :int
    attach_function :billiard_config_set_worker_cwd, %i[pointer string], :int
    attach_function :billiard_config_set_max_queued, %i[pointer size_t], :int
    attach_function :billiard_config_set_prefetch, %i[pointer uint32], :int
    attach_function :billiard_config_set_soft_time_limit, %i[pointer uint64], :int
    attach_function :billiard_config_set_hard_time_limit, %i[pointer uint64], :int
    attach_function :billiard_config_set_kill_grace, %i[pointer uint64], :int
    attach_function :billiard_config_set_max_tasks_per_worker, %i[pointer uint64 uint64], :int
    attach_function :billiard_config_set_soft_memory_limit, %i[pointer uint64], :int
    attach_function :billiard_config_set_hard_memory_limit, %i[pointer uint64], :int
    attach_function :billiard_config_set_notices, %i[pointer uint32], :int
    attach_function :billiard_config_set_fork_server_callback, %i[pointer fork_server pointer], :int
    attach_function :billiard_task_opts_init, [:pointer], :int
    attach_function :billiard_pool_new, %i[pointer pointer], :int, blocking: true
    # Payloads and replies go in as Strings (:buffer_in): the library copies
    # them before it returns.
    attach_function :billiard_pool_submit, %i[pointer buffer_in size_t pointer pointer], :int,
                    blocking: true
    attach_function :billiard_pool_wait, %i[pointer int64 pointer], :int, blocking: true
    attach_function :billiard_task_wait, %i[pointer uint64 int64 pointer], :int, blocking: true
    # The same two calls keeping the GVL, for when they cannot block: a
    # submit to an unbounded queue, a wait with timeout 0. Releasing and
    # taking the GVL again cost more than such a call.
    attach_function :billiard_pool_submit_now, :billiard_pool_submit,
                    %i[pointer buffer_in size_t pointer pointer], :int
    attach_function :billiard_task_wait_now, :billiard_task_wait, %i[pointer uint64 int64 pointer], :int
    attach_function :billiard_pool_wait_now, :billiard_pool_wait, %i[pointer int64 pointer], :int
    attach_function :billiard_task_cancel, %i[pointer uint64], :int
    attach_function :billiard_task_cancel_signal, %i[pointer uint64 int], :int
    attach_function :billiard_task_signal, %i[pointer uint64 int], :int
    attach_function :billiard_task_status, %i[pointer uint64 pointer], :int
    attach_function :billiard_pool_notices, %i[pointer pointer size_t pointer], :int
    attach_function :billiard_pool_set_notices, %i[pointer uint32], :int
    attach_function :billiard_pool_resize, %i[pointer uint32], :int
    attach_function :billiard_pool_restart, [:pointer], :int
    attach_function :billiard_pool_fd, [:pointer], :int
    attach_function :billiard_pool_close, [:pointer], :int
    attach_function :billiard_pool_join, %i[pointer int64], :int, blocking: true
    attach_function :billiard_pool_free, [:pointer], :void, blocking: true
    attach_function :billiard_pool_terminate, [:pointer], :int, blocking: true
    attach_function :billiard_pool_stats, %i[pointer pointer], :int
    attach_function :billiard_pool_workers, %i[pointer pointer size_t pointer], :int
    attach_function :billiard_result_task_id, [:pointer], :uint64
    attach_function :billiard_result_tag, [:pointer], :uint64
    attach_function :billiard_result_outcome, [:pointer], :int
    attach_function :billiard_result_data, %i[pointer pointer], :pointer
    attach_function :billiard_result_pid, [:pointer], :int
    attach_function :billiard_result_exit_code, [:pointer], :int
    attach_function :billiard_result_signal, [:pointer], :int
    attach_function :billiard_result_queued_us, [:pointer], :uint64
    attach_function :billiard_result_running_us, [:pointer], :uint64
    attach_function :billiard_result_free, [:pointer], :void
    attach_function :billiard_reply_write, %i[pointer buffer_in size_t], :int
    attach_function :billiard_reply_error, %i[pointer string], :int
    attach_function :billiard_worker_main, %i[handler pointer], :int, blocking: true
    attach_function :billiard_worker_main_hooks, %i[handler pointer pointer], :int, blocking: true
    attach_function :billiard_worker_set_error, [:string], :void
    attach_function :billiard_forkserver_serve, %i[int handler pointer pointer], :int,
                    blocking: true
    attach_function :billiard_worker_soft_limit_reached, [], :bool

    if billiard_abi_version != ABI_VERSION
      raise LoadError, "libbilliard #{billiard_version} has ABI #{billiard_abi_version}; " \
                       "this binding is written for #{ABI_VERSION}"
    end
  end

  EINVAL = -1
  ETIMEDOUT = -2
  ECLOSED = -3
  EFULL = -4
  ENOTFOUND = -5
  ESPAWN = -6
  LIMIT_DEFAULT = -1
  LIMIT_NONE = 0
  # How long one blocking call lasts at most, so that Ruby interrupts
  # (Ctrl-C, Thread#raise, Timeout) are seen while a wait runs.
  WAIT_SLICE_MS = 200

  # A failed library call: +code+ (BILLIARD_E*), +name+ and the library's message.
  class Error < StandardError
    attr_reader :code, :name

    def initialize(code, message)
      @code = code
      @name = Lib.billiard_errname(code)
      super("#{@name}: #{message}")
    end
  end

  class TimeoutError < Error; end
  class ClosedError < Error; end
  class FullError < Error; end
  class NotFoundError < Error; end
  class SpawnError < Error; end

  ERRORS = { ETIMEDOUT => TimeoutError, ECLOSED => ClosedError, EFULL => FullError,
             ENOTFOUND => NotFoundError, ESPAWN => SpawnError }.freeze

  def self.error(code)
    ERRORS.fetch(code, Error).new(code, Lib.billiard_last_error || Lib.billiard_strerror(code))
  end

  def self.check(code)
    raise error(code) if code.negative?

    code
  end

  # How a task ended: Result#outcome is one of these symbols.
  OUTCOMES = %i[ok failed worker_lost time_limit cancelled abandoned memory_limit].freeze
  # Notice#kind (BILLIARD_NOTICE_*).
  NOTICE_KINDS = { 1 => :started, 2 => :soft_limit, 4 => :worker_started, 8 => :worker_exited }.freeze
  # TaskStatus#state (BILLIARD_TASK_*).
  TASK_STATES = { 1 => :queued, 2 => :sent, 3 => :running, 4 => :done }.freeze
  # Worker#state (BILLIARD_WORKER_*).
  WORKER_STATES = %i[starting idle busy retiring stopping].freeze

  # Something that happened to a task before its result (Pool#notices):
  # kind (:started or :soft_limit), pid (the worker running it), time (a
  # Time), elapsed (seconds: from submit to start, or from start to the
  # soft limit).
  Notice = Struct.new(:kind, :task_id, :tag, :pid, :time, :elapsed, keyword_init: true)
  # Where a task is now (Pool#task_status): state (:queued, :sent, :running,
  # :done), pid (0 if none), started (a Time while running, else nil).
  TaskStatus = Struct.new(:state, :pid, :tag, :started, keyword_init: true)
  # One worker (Pool#workers): task_id is the task it runs now (0: none).
  Worker = Struct.new(:pid, :state, :task_id, :tasks_done, :rss_bytes, keyword_init: true)

  # A finished task, copied out of the library (the C result is freed).
  Result = Struct.new(:task_id, :tag, :outcome, :data, :pid, :exit_code, :signal,
                      :queued_us, :running_us, keyword_init: true) do
    def ok?
      outcome == :ok
    end

    # The reply's bytes; raises TaskError unless the task ended OK.
    def value
      raise TaskError.for(self) unless ok?

      data
    end

    # Copies the C result +ptr+ out and frees it; +size+ is room for a
    # size_t (a fresh one if not given).
    def self.take(ptr, size = FFI::MemoryPointer.new(:size_t))
      data = Lib.billiard_result_data(ptr, size)
      new(task_id: Lib.billiard_result_task_id(ptr), tag: Lib.billiard_result_tag(ptr),
          outcome: OUTCOMES.fetch(Lib.billiard_result_outcome(ptr)),
          data: data.null? ? "".b : data.read_bytes(size.read(:size_t)),
          pid: Lib.billiard_result_pid(ptr), exit_code: Lib.billiard_result_exit_code(ptr),
          signal: Lib.billiard_result_signal(ptr),
          queued_us: Lib.billiard_result_queued_us(ptr),
          running_us: Lib.billiard_result_running_us(ptr))
    ensure
      Lib.billiard_result_free(ptr)
    end
  end

  # Raised by Result#value for a task that did not end OK (TaskError.for
  # picks the subclass for the outcome); Billiard.map raises these for an
  # item whose task ended so.
  class TaskError < StandardError
    # The task's Result (nil for a MemoryLimitExceeded raised in a block).
    attr_reader :result

    def initialize(result, message = nil)
      @result = result
      super(message || "task #{result.task_id}: #{result.outcome}: #{result.data}")
    end

    # The error for +result+'s outcome: a subclass where one is defined.
    def self.for(result)
      { worker_lost: WorkerLost, time_limit: TimeLimitExceeded, memory_limit: MemoryLimitExceeded,
        cancelled: Cancelled, abandoned: Abandoned }.fetch(result.outcome, TaskError).new(result)
    end
  end

  # The worker running the task died (a crash, a kill, an exit).
  class WorkerLost < TaskError; end
  # The task passed its hard time limit and its worker was stopped.
  class TimeLimitExceeded < TaskError; end
  # The worker died out of memory under the hard memory limit, or (from
  # Billiard.map and ForkPool) the block's allocation failed under it.
  class MemoryLimitExceeded < TaskError; end
  # The task was cancelled.
  class Cancelled < TaskError; end
  # The pool stopped (terminate, a failed pool) before the task could run.
  class Abandoned < TaskError; end

  # A wait: first with timeout 0 keeping the GVL (the block gets now =
  # true: a result that is in already is taken without releasing it), then,
  # unless +timeout+ is 0, in slices as Billiard.sliced. Returns the code.
  def self.now_then_sliced(timeout)
    rc = yield 0, true
    rc = sliced(timeout) { |ms| yield ms, false } if rc == ETIMEDOUT && timeout != 0
    rc
  end

  # Calls a blocking library call (given the ms it may block) in slices
  # until it returns something other than ETIMEDOUT or +timeout+ seconds
  # (nil: forever) pass; returns its code.
  def self.sliced(timeout)
    deadline = timeout && Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      slice = WAIT_SLICE_MS
      if deadline
        left = ((deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)) * 1000).ceil
        slice = left.clamp(0, WAIT_SLICE_MS)
      end
      rc = yield slice
      return rc if rc != ETIMEDOUT
      return rc if deadline && Process.clock_gettime(Process::CLOCK_MONOTONIC) >= deadline
    end
  end

  # A pool of worker processes running +argv+. Thread-safe, as the C pool
  # is. Close it (or use Pool.open with a block); a pool that is garbage
  # collected unclosed is freed by a finalizer.
  class Pool
    START_METHODS = { spawn: 1, forkserver: 2 }.freeze

    # With a block: yields the pool, then closes it (waiting for its tasks,
    # or not when the block raised) and returns the block's value.
    def self.open(argv = nil, **options, &block)
      return new(argv, **options) unless block

      Thread.handle_interrupt(Object => :never) { Billiard.closing(new(argv, **options), &block) }
    end

    # Frees a pool pointer: FFI::AutoPointer's releaser, called once, by
    # close or by the garbage collector (no call can be in flight then: a
    # call holds the pool).
    def self.release(ptr)
      Lib.billiard_pool_free(ptr)
    end

    # Workers run +argv+ (a worker program calling Billiard.worker_main),
    # or, with +handler+ instead (a callable: payload String in, reply
    # out), they are forks of this process: the pool asks it to fork a fork
    # server (Process.fork, on the thread creating the pool; a replacement
    # for a server that died is forked on a thread of the ffi gem), and the
    # handler with everything loaded before the pool came along.
    # +after_fork+, +at_exit+ and +soft_limit_raises+ are as for
    # Billiard.worker_main.
    #
    # Options (seconds for times, bytes for memory): workers (0: one per
    # CPU), start_method (:spawn, default, or :forkserver), env, cwd,
    # soft_time_limit, hard_time_limit, kill_grace, max_tasks_per_worker,
    # soft_memory_limit (a worker above it after a task is replaced),
    # hard_memory_limit (a worker's address space cannot grow past it),
    # max_queued, prefetch (most tasks in flight to one worker: default 16,
    # 1 with a soft memory limit; 1 sends a task only to an idle worker),
    # notices (true: keep started and soft-limit notices for #notices).
    def initialize(argv = nil, workers: 0, handler: nil, after_fork: nil, at_exit: nil,
                   soft_limit_raises: false, start_method: :spawn, env: {}, cwd: nil, soft_time_limit: nil,
                   hard_time_limit: nil, kill_grace: nil, max_tasks_per_worker: nil,
                   soft_memory_limit: nil, hard_memory_limit: nil, max_queued: 0, prefetch: nil,
                   notices: false)
      raise ArgumentError, "a worker program (argv) or a handler, not both" if argv.nil? == handler.nil?
      if handler && Billiard.forked_worker?
        # Ruby aborts on Process.fork in a process the library forked.
        raise Error.new(EINVAL, "a pool of forks (handler:, Billiard.map, Pool.fork) cannot start " \
                                "inside a worker of one: Ruby cannot fork there; use a worker program (argv)")
      end
      if argv && (after_fork || at_exit || soft_limit_raises)
        raise ArgumentError, "after_fork, at_exit and soft_limit_raises go with handler:; " \
                             "a worker program passes them to worker_main"
      end

      cfg_out = FFI::MemoryPointer.new(:pointer)
      Billiard.check(Lib.billiard_config_new(cfg_out))
      cfg = cfg_out.read_pointer
      begin
        Billiard.check(Lib.billiard_config_set_workers(cfg, workers))
        if handler
          # Kept for the pool's life: the library calls it for replacements.
          @fork_server = Billiard.server_forker(handler, after_fork, at_exit, soft_limit_raises)
          Billiard.check(Lib.billiard_config_set_fork_server_callback(cfg, @fork_server, nil))
        else
          argv = Array(argv).map(&:to_s)
          strings = argv.map { |a| FFI::MemoryPointer.from_string(a) }
          array = FFI::MemoryPointer.new(:pointer, strings.size)
          array.write_array_of_pointer(strings)
          method = START_METHODS.fetch(start_method) { raise ArgumentError, "start_method #{start_method}" }
          Billiard.check(Lib.billiard_config_set_start_method(cfg, method))
          Billiard.check(Lib.billiard_config_set_worker_argv(cfg, array, strings.size))
        end
        Billiard.check(Lib.billiard_config_set_notices(cfg, 3)) if notices
        env.each { |k, v| Billiard.check(Lib.billiard_config_set_worker_env(cfg, k.to_s, v.to_s)) }
        Billiard.check(Lib.billiard_config_set_worker_cwd(cfg, cwd.to_s)) if cwd
        Billiard.check(Lib.billiard_config_set_max_queued(cfg, max_queued))
        Billiard.check(Lib.billiard_config_set_prefetch(cfg, prefetch)) if prefetch
        { billiard_config_set_soft_time_limit: soft_time_limit,
          billiard_config_set_hard_time_limit: hard_time_limit,
          billiard_config_set_kill_grace: kill_grace }.each do |setter, seconds|
          Billiard.check(Lib.send(setter, cfg, (seconds * 1000).round)) if seconds
        end
        if max_tasks_per_worker
          Billiard.check(Lib.billiard_config_set_max_tasks_per_worker(cfg, max_tasks_per_worker, 0))
        end
        { billiard_config_set_soft_memory_limit: soft_memory_limit,
          billiard_config_set_hard_memory_limit: hard_memory_limit }.each do |setter, bytes|
          next unless bytes
          raise ArgumentError, "a memory limit is a positive number of bytes" unless bytes.positive?

          Billiard.check(Lib.send(setter, cfg, Integer(bytes)))
        end
        out = FFI::MemoryPointer.new(:pointer)
        # An interrupt (Thread#raise, Ctrl-C) waits until the new pool is
        # held by its AutoPointer: raised in between (as the blocking call
        # returns), it left the pool and its workers with nothing to free
        # them.
        Thread.handle_interrupt(Object => :never) do
          Billiard.check(Lib.billiard_pool_new(cfg, out))
          @ptr = FFI::AutoPointer.new(out.read_pointer, self.class.method(:release))
        end
      ensure
        Lib.billiard_config_free(cfg)
      end
      @io = nil
      @unbounded = max_queued.zero?
      # The close rule: calls enter the gate; close shuts it (later calls
      # raise ClosedError), terminates (the library wakes every waiter and
      # blocked submit), waits for the calls in flight, then frees.
      @gate = Monitor.new
      @gate_idle = @gate.new_cond
      @in_flight = 0
      @closed = false
    end

    # Submits +data+ (a String, sent as bytes) and returns its task id.
    # Per-task limits in seconds: nil takes the pool's, Float::INFINITY none.
    def submit(data, tag: 0, soft_time_limit: nil, hard_time_limit: nil, block: true)
      submit_all([data], tag: tag, soft_time_limit: soft_time_limit, hard_time_limit: hard_time_limit,
                         block: block).first
    end

    # Submits each of +datas+ in order (the options as for #submit) and
    # returns their task ids: one entry into the pool for all of them. A
    # data may be an Array of Strings, its parts: they are copied one after
    # the other into a buffer reused for every task (the library copies
    # each task), not joined into a fresh String. If one fails, the error
    # is raised and the tasks before it stay submitted.
    def submit_all(datas, tag: 0, soft_time_limit: nil, hard_time_limit: nil, block: true)
      opts = Lib::TaskOpts.new
      Lib.billiard_task_opts_init(opts)
      opts[:tag] = tag
      opts[:flags] = block ? 0 : 1
      opts[:soft_time_limit_ms] = limit_ms(soft_time_limit)
      opts[:hard_time_limit_ms] = limit_ms(hard_time_limit)
      id = FFI::MemoryPointer.new(:uint64)
      # Only a bounded queue makes a submit wait: the others keep the GVL.
      now = @unbounded || !block
      scratch = nil
      call do |h|
        datas.map do |data|
          data = data.first if data.is_a?(Array) && data.size == 1
          if data.is_a?(Array)
            size = data.sum(&:bytesize)
            scratch = FFI::MemoryPointer.new(:uint8, size) if scratch.nil? || scratch.size < size
            data.inject(0) { |offset, part| scratch.put_bytes(offset, part) && offset + part.bytesize }
            data = scratch
          else
            data = data.to_s
            size = data.bytesize
          end
          rc = if now
                 Lib.billiard_pool_submit_now(h, data, size, opts, id)
               else
                 Lib.billiard_pool_submit(h, data, size, opts, id)
               end
          Billiard.check(rc)
          id.read(:uint64)
        end
      end
    end

    # The next finished task's Result, whichever; nil when no task is
    # pending and no result waits. Raises TimeoutError after +timeout+ s.
    def wait(timeout = nil)
      take(timeout) { |h, ms, out| Lib.billiard_pool_wait(h, ms, out) }
    rescue NotFoundError
      nil
    end

    # The Result of task +id+ (NotFoundError if it is not pending).
    def wait_task(id, timeout = nil)
      wait_tasks([id], timeout).first
    end

    # The Results of the tasks +ids+, in their order, each waited for as
    # #wait_task does (+timeout+ for each): one entry into the pool for
    # all of them. If a wait fails, its error is raised; the results taken
    # before it are lost to the caller.
    def wait_tasks(ids, timeout = nil)
      size = FFI::MemoryPointer.new(:size_t)
      waited(ids, timeout, ready_after_first: false).map { |ptr| Result.take(ptr, size) }
    end

    # For a caller that needs only the replies (ForkPool): waits up to
    # +timeout+ for the first task of +ids+, then takes the results of the
    # ones after it that are in already, up to the first that is not.
    # Returns what it took, in order: each task's reply (a binary String)
    # if it ended OK, else its Result.
    def take_replies(ids, timeout = nil)
      size = FFI::MemoryPointer.new(:size_t)
      waited(ids, timeout, ready_after_first: true).map { |ptr| Pool.reply(ptr, size) }
    end

    # #take_replies for results in any order (only for a caller that is
    # the pool's only waiter): up to +max+ pairs [task id, reply], the
    # first waited for (+timeout+), the others in already; [] when no task
    # is pending.
    def take_any_replies(max, timeout = nil)
      size = FFI::MemoryPointer.new(:size_t)
      out = FFI::MemoryPointer.new(:pointer)
      taken = []
      call do |h|
        rc = Billiard.now_then_sliced(timeout) do |ms, now|
          now ? Lib.billiard_pool_wait_now(h, 0, out) : Lib.billiard_pool_wait(h, ms, out)
        end
        return [] if rc == ENOTFOUND

        Billiard.check(rc)
        taken << out.read_pointer
        taken << out.read_pointer while taken.size < max && Lib.billiard_pool_wait_now(h, 0, out).zero?
      end
      taken.map { |ptr| [Lib.billiard_result_task_id(ptr), Pool.reply(ptr, size)] }
    end

    # A C result's reply (freed): its data if it ended OK, else its Result.
    def self.reply(ptr, size)
      return Result.take(ptr, size) unless Lib.billiard_result_outcome(ptr).zero?

      begin
        data = Lib.billiard_result_data(ptr, size)
        data.null? ? "".b : data.read_bytes(size.read(:size_t))
      ensure
        Lib.billiard_result_free(ptr)
      end
    end

    # Yields every Result until none is pending.
    def each_result(timeout = nil)
      while (result = wait(timeout))
        yield result
      end
    end

    # Cancels task +id+: true if it was pending (it ends :cancelled).
    # +signal+ (a name or number) is the first signal a running task's
    # worker gets instead of SIGTERM (:KILL: at once; SIGKILL follows any
    # other after the kill grace).
    def cancel(id, signal: nil)
      rc = call do |h|
        signal ? Lib.billiard_task_cancel_signal(h, id, Billiard.signo(signal)) : Lib.billiard_task_cancel(h, id)
      end
      return false if rc == ENOTFOUND

      Billiard.check(rc)
      true
    end

    # Sends +signal+ to the worker running task +id+ without cancelling it:
    # true if sent, false if the task is not running (queued, not started,
    # finished). Never reaches the task after it on that worker.
    def signal(id, signal)
      rc = call { |h| Lib.billiard_task_signal(h, id, Billiard.signo(signal)) }
      return false if rc == ENOTFOUND

      Billiard.check(rc)
      true
    end

    # Where task +id+ is now (a TaskStatus); NotFoundError once its result
    # was collected.
    def task_status(id)
      info = Lib::TaskInfo.new
      info[:struct_size] = Lib::TaskInfo.size
      call { |h| Billiard.check(Lib.billiard_task_status(h, id, info)) }
      TaskStatus.new(state: TASK_STATES.fetch(info[:state]), pid: info[:pid], tag: info[:tag],
                     started: info[:started_us].zero? ? nil : Time.at(info[:started_us] / 1e6))
    end

    # Whether a worker started task +id+: it runs, or it finished after
    # running (true once its result was collected).
    def started?(id)
      status = task_status(id)
      status.state == :running || (status.state == :done && status.pid != 0)
    rescue NotFoundError
      true
    end

    # Changes which notices the pool keeps from now on, as notices: does at
    # the start: a task that starts after started: is turned on has its
    # notice at once; one that started before has it with its result if
    # started: is still on then. Notices already waiting stay until read.
    def set_notices(started: false, soft_limit: false)
      kinds = (started ? 1 : 0) | (soft_limit ? 2 : 0)
      call { |h| Billiard.check(Lib.billiard_pool_set_notices(h, kinds)) }
      nil
    end

    # Every notice waiting (Notice structs, oldest first; [] when none),
    # without waiting or taking a result. Kept only with notices: true;
    # #io is readable while one waits.
    def notices
      out = []
      batch = FFI::MemoryPointer.new(Lib::Notice, 64)
      count = FFI::MemoryPointer.new(:size_t)
      loop do
        call { |h| Billiard.check(Lib.billiard_pool_notices(h, batch, 64, count)) }
        n = count.read(:size_t)
        n.times do |i|
          c = Lib::Notice.new(batch[i])
          out << Notice.new(kind: NOTICE_KINDS.fetch(c[:kind]), task_id: c[:task_id], tag: c[:tag],
                            pid: c[:pid], time: Time.at(c[:time_us] / 1e6),
                            elapsed: c[:elapsed_us] / 1e6)
        end
        return out if n < 64
      end
    end

    # Grows or shrinks the pool (shrinking retires workers after the tasks
    # they hold).
    def resize(workers)
      call { |h| Billiard.check(Lib.billiard_pool_resize(h, workers)) }
      nil
    end

    # Replaces every worker, each after the tasks it holds.
    def restart
      call { |h| Billiard.check(Lib.billiard_pool_restart(h)) }
      nil
    end

    # Stops now: every worker is killed and reaped, and every unfinished
    # task ends :abandoned (their results stay collectable; submit raises
    # ClosedError). Idempotent. #close still frees the pool.
    def terminate
      call { |h| Billiard.check(Lib.billiard_pool_terminate(h)) }
      nil
    end

    # An IO that is readable while results wait, for IO.select. It holds a
    # duplicate of the pool's fd, closed with the pool.
    def io
      @io ||= begin
        raw = IO.for_fd(call { |h| Lib.billiard_pool_fd(h) }, autoclose: false)
        raw.dup.tap { raw.autoclose = false }
      end
    end

    # Every worker now (Worker structs: pid, state, the task it runs,
    # tasks done, RSS): all of them (the list grows to what the library
    # reports).
    def workers
      room = 64
      count = FFI::MemoryPointer.new(:size_t)
      loop do
        infos = FFI::MemoryPointer.new(Lib::WorkerInfo, room)
        call { |h| Billiard.check(Lib.billiard_pool_workers(h, infos, room, count)) }
        n = count.read(:size_t)
        if n <= room
          return Array.new(n) do |i|
            w = Lib::WorkerInfo.new(infos[i])
            Worker.new(pid: w[:pid], state: WORKER_STATES.fetch(w[:state]), task_id: w[:task_id],
                       tasks_done: w[:tasks_done], rss_bytes: w[:rss_bytes])
          end
        end

        room = n + 16
      end
    end

    # The pids of the pool's workers now (all of them).
    def worker_pids
      workers.map(&:pid)
    end

    # Counters (billiard_stats) as a Hash.
    def stats
      stats = Lib::Stats.new
      stats[:struct_size] = Lib::Stats.size
      call { |h| Billiard.check(Lib.billiard_pool_stats(h, stats)) }
      %i[workers busy idle target queued running uncollected restarts recycles]
        .to_h { |k| [k, stats[k]] }
    end

    # Closes the pool for good: with +wait+, queued and running tasks
    # finish first; then every worker is stopped and reaped, and the pool
    # freed. Idempotent, and safe while other threads are inside the pool:
    # they are woken (waits end, blocked submits raise ClosedError) and the
    # pool is freed once they are out; later calls raise ClosedError.
    def close(wait: true)
      if wait
        begin
          call { |h| Billiard.check(Lib.billiard_pool_close(h)) }
          call { |h| Billiard.check(Billiard.sliced(nil) { |ms| Lib.billiard_pool_join(h, ms) }) }
        rescue ClosedError
          nil
        end
      end
      first = @gate.synchronize { !@closed.tap { @closed = true } }
      # Terminate first: the library wakes every waiter and blocked submit.
      Lib.billiard_pool_terminate(@ptr) if first
      @gate.synchronize { @gate_idle.wait_while { @in_flight.positive? } }
      return unless first

      @io&.close
      @ptr.free
    end

    def closed?
      @gate.synchronize { @closed }
    end

    private

    # Runs the block with the pool's pointer, inside the gate. Interrupts
    # (Thread#raise, Ctrl-C) land only in the block, never in the count.
    def call
      Thread.handle_interrupt(Object => :never) do
        @gate.synchronize do
          raise ClosedError.new(ECLOSED, "the pool was closed") if @closed

          @in_flight += 1
        end
        begin
          Thread.handle_interrupt(Object => :immediate) { yield @ptr }
        ensure
          @gate.synchronize do
            @in_flight -= 1
            @gate_idle.broadcast if @in_flight.zero?
          end
        end
      end
    end

    # The C results (the caller frees them) of the tasks +ids+ in order,
    # inside one entry into the pool: each waited for (+timeout+), or with
    # +ready_after_first+ the first waited for and the others up to the
    # first that is not in yet.
    def waited(ids, timeout, ready_after_first:)
      out = FFI::MemoryPointer.new(:pointer)
      taken = []
      call do |h|
        ids.each do |id|
          patient = taken.empty? || !ready_after_first
          rc = Billiard.now_then_sliced(patient ? timeout : 0) do |ms, now|
            now ? Lib.billiard_task_wait_now(h, id, 0, out) : Lib.billiard_task_wait(h, id, ms, out)
          end
          break if rc == ETIMEDOUT && !patient

          Billiard.check(rc)
          taken << out.read_pointer
        end
      end
      taken
    rescue Exception # rubocop:disable Lint/RescueException
      taken.each { |ptr| Lib.billiard_result_free(ptr) }
      raise
    end

    def take(timeout)
      out = FFI::MemoryPointer.new(:pointer)
      call { |h| Billiard.check(Billiard.sliced(timeout) { |ms| yield h, ms, out }) }
      Result.take(out.read_pointer)
    end

    def limit_ms(seconds)
      return LIMIT_DEFAULT if seconds.nil?
      return LIMIT_NONE if seconds == Float::INFINITY
      raise ArgumentError, "a time limit is positive" unless seconds.positive?

      [(seconds * 1000).round, 1].max
    end
  end

  # The C task handler calling +handler+ with each payload (a binary
  # String); the reply is its value (to_s; an Array's parts in turn); an
  # exception fails the task.
  #
  # Nothing may leave the block by an exception (it would unwind through
  # the library's C frames): a signal Ruby turned into an exception
  # (SIGTERM, SIGINT) ends the worker by that signal, as it would a worker
  # without Ruby's handlers; exit ends it with its status; anything else
  # fails the task.
  def self.trampoline(handler)
    FFI::Function.new(:int, %i[pointer pointer size_t pointer]) do |_ctx, input, length, reply|
      out = handler.call(length.zero? ? "".b : input.read_bytes(length))
      # An Array's parts are appended one after the other (no copy joins them).
      written = if out.is_a?(Array)
                  out.all? { |part| reply_write(reply, part) }
                else
                  reply_write(reply, out)
                end
      written ? 0 : 1
    rescue SignalException => e
      die_of(e.signo)
    rescue SystemExit => e
      $stdout.flush
      exit!(e.status)
    rescue Exception => e # rubocop:disable Lint/RescueException
      Lib.billiard_reply_error(reply, "#{e.class}: #{e.message}".delete("\0"))
      1
    end
  end

  # Appends +data+ (to_s) to a task's reply; whether it went in.
  def self.reply_write(reply, data)
    data = data.to_s
    Lib.billiard_reply_write(reply, data, data.bytesize).zero?
  end

  # Ends this process by +signo+ with its default action.
  def self.die_of(signo)
    Signal.trap(signo, "SYSTEM_DEFAULT")
    Process.kill(signo, Process.pid)
    sleep 1 while true # rubocop:disable Style/InfiniteLoop
  end

  # Raised inside a task when its soft time limit passes, in workers made
  # with soft_limit_raises: true.
  class SoftTimeLimitExceeded < StandardError; end

  # A worker's signals. SIGTERM at its default action: a stop ends the
  # worker at once, also while it waits in the library for its next task
  # (Ruby runs its handler only when the VM gets control, which a worker
  # waiting there never gives it: every stop of an idle worker waited out
  # the kill grace, 1 s). The soft limit's signal (SIGUSR1), which Ruby
  # turns into an exception by default: with +raises+, a
  # SoftTimeLimitExceeded in the task when its soft limit passed; else the
  # library's own handler (a blocking call returns early;
  # Billiard.soft_limit_reached? says why).
  def self.set_worker_signals(raises)
    Signal.trap("TERM", "SYSTEM_DEFAULT")
    if raises
      Signal.trap("USR1") { raise SoftTimeLimitExceeded, "the task's soft time limit passed" if soft_limit_reached? }
    else
      Signal.trap("USR1", "SYSTEM_DEFAULT")
    end
  end

  # The C worker hooks (a struct and the functions to keep alive):
  # +after_fork+ (an exception is a failed start, reported with its
  # message) and +at_exit+.
  def self.hooks(after_fork, at_exit)
    run_after_fork = FFI::Function.new(:int, [:pointer]) do |_ctx|
      after_fork&.call
      0
    rescue Exception => e # rubocop:disable Lint/RescueException
      Lib.billiard_worker_set_error("#{e.class}: #{e.message}".delete("\0"))
      1
    end
    run_at_exit = FFI::Function.new(:void, [:pointer]) do |_ctx|
      at_exit&.call
    rescue Exception # rubocop:disable Lint/RescueException
      nil
    ensure
      $stdout.flush
      $stderr.flush
    end
    hooks = Lib::WorkerHooks.new
    hooks[:struct_size] = Lib::WorkerHooks.size
    hooks[:after_fork] = run_after_fork
    hooks[:at_exit] = run_at_exit
    [hooks, [run_after_fork, run_at_exit]]
  end

  # Runs a worker program: yields each task's payload (a binary String)
  # and replies with the block's value (to_s), until the pool closes the
  # channel; returns the exit code (exit Billiard.worker_main { ... }). An
  # exception fails the task with its message.
  #
  # +after_fork+ runs in each worker before its first task (under
  # :forkserver, in each forked worker, not in the server); an exception
  # there is a failed start, reported with its message. +at_exit+ runs
  # when a worker exits in order (recycled, retired, pool closed); not on a
  # crash, a kill or terminate. (A :forkserver worker ends with _exit:
  # Ruby's own at_exit blocks do not run there; put what must run in
  # +at_exit+.)
  #
  # With +soft_limit_raises+, a task whose soft time limit passes gets
  # Billiard::SoftTimeLimitExceeded raised in it.
  def self.worker_main(after_fork: nil, at_exit: nil, soft_limit_raises: false, &handler)
    set_worker_signals(soft_limit_raises)
    callback = trampoline(handler)
    hooks, keep = self.hooks(after_fork, at_exit)
    settle_ffi_dispatcher
    rc = Lib.billiard_worker_main_hooks(callback, nil, hooks)
    keep.clear
    check(rc)
  end

  # The fork-server callback of a Pool.new(handler: ...): forks this
  # process (Process.fork); the child serves as the pool's fork server and
  # leaves with exit! (the host's at_exit blocks are the host's).
  #
  # The server's C functions (the task handler, the hooks) are made here,
  # in this process, once: making an FFI::Function starts the ffi gem's
  # callback thread, and one started in the server could hold the GVL at
  # the moment the server forks a worker, which then waited for the GVL
  # forever (a worker hung in its after-fork hook, once in a full run).
  def self.server_forker(handler, after_fork, at_exit, soft_limit_raises)
    serve = trampoline(handler)
    hooks, keep = self.hooks(after_fork, at_exit)
    FFI::Function.new(:int, %i[pointer int]) do |_ctx, server_fd|
      keep # the hooks' functions live as long as this callback
      Process.fork do
        code = 2
        # The pool may be made with interrupts deferred (Pool.open,
        # Billiard.map); the fork inherits that, and the workers must see
        # SIGTERM at once (it ends them) and the soft limit's signal.
        Thread.handle_interrupt(Object => :immediate) do
          @forked_worker = true
          set_worker_signals(soft_limit_raises)
          code = Lib.billiard_forkserver_serve(server_fd, serve, nil, hooks)
        end
      ensure
        exit!(code.negative? ? 2 : code)
      end
    rescue StandardError
      -1
    end
  end

  # Waits (up to 5 s) until the ffi gem's callback thread, which the first
  # FFI::Function starts, is parked outside the GVL. Under :forkserver this
  # process is then forked by the library without Ruby knowing; a fork
  # taken while that thread still held the GVL, starting up, left the
  # worker waiting for it forever.
  def self.settle_ffi_dispatcher
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 5
    Thread.list.each do |thread|
      next unless thread.name == "FFI Callback Dispatcher"

      Thread.pass while thread.status == "run" && Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
    end
  end

  # Whether this process is a fork server of a handler: pool or one of its
  # workers (forked by the library, where Ruby's own fork aborts).
  def self.forked_worker?
    @forked_worker == true
  end

  # Yields +pool+, then closes it (waiting for its tasks; at once if the
  # block raised) and returns the block's value. The caller made the pool
  # with interrupts deferred (Thread.handle_interrupt(Object => :never)):
  # they reach only the block and the closing wait, so the pool is closed
  # whatever interrupts the thread.
  def self.closing(pool)
    Thread.handle_interrupt(Object => :immediate) do
      value = yield pool
      pool.close
      value
    end
  rescue Exception # rubocop:disable Lint/RescueException
    pool.close(wait: false)
    raise
  end

  # A signal number from a name (:KILL, "SIGUSR1") or a number.
  def self.signo(signal)
    return Integer(signal) if signal.is_a?(Integer)

    Signal.list.fetch(signal.to_s.delete_prefix("SIG")) { raise ArgumentError, "unknown signal #{signal}" }
  end

  # Inside a worker: whether the running task's soft time limit passed.
  def self.soft_limit_reached?
    Lib.billiard_worker_soft_limit_reached
  end

  def self.version
    Lib.billiard_version
  end
end

require_relative "billiard/fork_pool"
