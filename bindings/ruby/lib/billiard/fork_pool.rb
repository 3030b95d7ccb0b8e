# frozen_string_literal: true

# Ruby blocks in supervised workers: Billiard.map / Billiard.each, and
# Billiard::Pool.fork for a long-lived pool of one block. The workers are
# forks of this process (through a fork server it forks when the pool
# starts), so the block, its closure and everything loaded come along.
# Items and values cross as Marshal data.
module Billiard
  # A task's raised exception that Marshal could not carry (an unmarshalable
  # instance variable, say): its class name, message and the worker's
  # backtrace.
  class RemoteError < StandardError
    attr_reader :remote_class

    def initialize(remote_class, message)
      @remote_class = remote_class
      super("#{remote_class}: #{message}")
    end
  end

  # One item's outcome (Billiard.map with per_item: true, Future#result):
  # its value, or the error it raised or that ended its task (a
  # TaskError such as WorkerLost, or the block's own exception).
  ItemResult = Struct.new(:value, :error) do
    def ok?
      error.nil?
    end

    # The value, or the error raised.
    def value!
      raise error if error

      value
    end
  end

  # How a block's work travels. An item or a value is Marshal data, except
  # a plain String (no instance variables; binary, UTF-8 or US-ASCII),
  # which goes as one tag byte and its bytes: Marshal would copy a big one
  # twice more on each side. Marshal data starts with its version byte
  # (4), never a tag. A block's exception goes back as Marshal data of a
  # Raised holding it.
  module Marshalled
    # A block's exception on its way back (never a block's value).
    Raised = Struct.new(:error)

    RAW_TAGS = { Encoding::BINARY => "b", Encoding::UTF_8 => "u", Encoding::US_ASCII => "a" }.freeze
    RAW_ENCODINGS = RAW_TAGS.to_h { |encoding, tag| [tag.ord, encoding] }.freeze

    # +value+ as the parts of its encoding (appended in turn).
    def self.parts(value)
      tag = value.instance_of?(String) && value.instance_variables.empty? && RAW_TAGS[value.encoding]
      tag ? [tag, value] : [Marshal.dump(value)]
    end

    # The value +data+ (a binary String) encodes.
    def self.load_value(data)
      encoding = RAW_ENCODINGS[data.getbyte(0)]
      encoding ? data.byteslice(1..).force_encoding(encoding) : Marshal.load(data)
    end

    # The worker's side: the reply to +payload+ for +block+ (its parts). A
    # signal Ruby turned into an exception and exit pass (the worker ends
    # as they say). Under a hard memory limit (+memory_limit+ bytes), a
    # NoMemoryError is that limit: it goes back as MemoryLimitExceeded.
    def self.serve(block, payload, memory_limit)
      parts(block.call(load_value(payload)))
    rescue SignalException, SystemExit
      raise
    rescue Exception => e # rubocop:disable Lint/RescueException
      if e.is_a?(NoMemoryError) && memory_limit
        limited = MemoryLimitExceeded.new(nil, "#{e.message} (the hard memory limit is #{memory_limit} bytes)")
        limited.set_backtrace(e.backtrace || [])
        e = limited
      end
      # The worker's backtrace ends where the block was called: the frames
      # below are this library's and the fork's.
      frames = e.backtrace || []
      e.set_backtrace(frames.take_while { |frame| !frame.start_with?(__FILE__) })
      dump_error(e)
    end

    def self.dump_error(error)
      Marshal.dump(Raised.new(error))
    rescue StandardError
      remote = RemoteError.new(error.class.name, error.message)
      remote.set_backtrace(error.backtrace || [])
      Marshal.dump(Raised.new(remote))
    end

    # The caller's side: +reply+ (a task's reply String, or the
    # Billiard::Result of a task that did not end OK) as an ItemResult.
    # A re-raised exception keeps the worker's backtrace, followed by
    # +caller_backtrace+. The workers are forks of this process running
    # its own block, so their Marshal data is loaded as this process's own.
    def self.load(reply, caller_backtrace)
      return ItemResult.new(nil, TaskError.for(reply)) if reply.is_a?(Result)

      value = load_value(reply)
      return ItemResult.new(value, nil) unless value.is_a?(Raised)

      error = value.error
      error.set_backtrace((error.backtrace || []) + caller_backtrace.reject { |f| f.start_with?(__FILE__) })
      ItemResult.new(nil, error)
    end
  end

  # A task of a ForkPool: #value waits for its value (raising what the
  # task raised), #result for its ItemResult. Thread-safe.
  class Future
    attr_reader :id

    def initialize(pool, id)
      @pool = pool
      @id = id
      @lock = Mutex.new
      @result = nil
    end

    # Waits (+timeout+ seconds; nil: as long as it takes) and returns the
    # value, or raises the item's error (Billiard::TimeoutError if it is
    # not in by then).
    def value(timeout = nil)
      result(timeout).value!
    end

    # Waits as #value does and returns the ItemResult.
    def result(timeout = nil)
      resolve(timeout, caller)
    end

    # #result with the caller's backtrace given (+where+). :nodoc:
    def resolve(timeout, where)
      @lock.synchronize { @result ||= @pool.collect(@id, timeout, where) }
    end

    # Cancels the task: true if it was pending (it ends Billiard::Cancelled).
    def cancel(signal: nil)
      @pool.pool.cancel(@id, signal: signal)
    end
  end

  # A pool whose workers run one Ruby block (Billiard::Pool.fork). Items
  # go in and values come out as Marshal data; a raised exception comes
  # back with the worker's backtrace. Thread-safe. Close it when done (a
  # pool that is garbage collected unclosed is freed by a finalizer).
  class ForkPool
    # How many results #map takes in one entry into the pool.
    MAP_SLICE = 256
    # Most tasks, and bytes of payload, #map keeps in flight: items go in
    # as results come out, so a big map holds little memory at a time
    # (fresh memory is page faults: 100 items of 1 MiB all at once cost
    # a third more time).
    WINDOW = 4096
    WINDOW_BYTES = 64 << 20

    # The Billiard::Pool underneath (for notices, task_status, signal, io).
    attr_reader :pool

    # +block+ runs in the workers. Options are Pool.new's (workers,
    # soft_time_limit, hard_time_limit, soft_memory_limit,
    # hard_memory_limit, max_tasks_per_worker, max_queued, after_fork,
    # at_exit, ...); soft_limit_raises is on, so a task past its soft time
    # limit gets Billiard::SoftTimeLimitExceeded raised in it.
    def initialize(workers: 0, soft_limit_raises: true, **options, &block)
      raise ArgumentError, "Billiard::Pool.fork needs a block" unless block

      limit = options[:hard_memory_limit]
      @pool = Pool.new(workers: workers, soft_limit_raises: soft_limit_raises,
                       handler: ->(payload) { Marshalled.serve(block, payload, limit) }, **options)
    end

    # Submits +item+ (Marshal-able) and returns its Future. Per-task limits
    # in seconds, as for Pool#submit.
    def submit(item, soft_time_limit: nil, hard_time_limit: nil)
      submit_all([item], soft_time_limit: soft_time_limit, hard_time_limit: hard_time_limit).first
    end

    # Submits every item (one entry into the pool) and returns their Futures.
    def submit_all(items, soft_time_limit: nil, hard_time_limit: nil)
      payloads = items.map { |item| Marshalled.parts(item) }
      @pool.submit_all(payloads, soft_time_limit: soft_time_limit, hard_time_limit: hard_time_limit)
           .map { |id| Future.new(self, id) }
    end

    # The block's value for each item, in order. The first item that fails
    # (in order) raises its error, once the items not finished yet are
    # cancelled; with +per_item+, an ItemResult for each item instead, and
    # nothing raises.
    def map(items, per_item: false, soft_time_limit: nil, hard_time_limit: nil)
      run(items, per_item: per_item, any_order: false, where: caller,
                 soft_time_limit: soft_time_limit, hard_time_limit: hard_time_limit)
    end

    # #map's work. With +any_order+ (only for the pool's sole user) results
    # are taken as they come, so a failure raises as soon as it is in;
    # else in order (other threads may wait for their own tasks), and the
    # cancelled tasks' results are collected before the raise. +where+ is
    # the caller's backtrace, for raised errors. Items go in as results come
    # out, at most WINDOW tasks or WINDOW_BYTES of payload in flight (and
    # never fewer than two per worker). :nodoc:
    def run(items, per_item:, any_order:, where:, **limits)
      ids = []
      index = {}
      sizes = []
      values = Array.new(items.size)
      done = Array.new(items.size, false)
      taken = 0
      in_flight = 0
      least = 2 * [@pool.stats[:target], 1].max
      while taken < items.size
        # Refill the window.
        batch = []
        while ids.size + batch.size < items.size &&
              (ids.size + batch.size - taken < least ||
               (ids.size + batch.size - taken < WINDOW && in_flight < WINDOW_BYTES))
          parts = Marshalled.parts(items[ids.size + batch.size])
          sizes << parts.sum(&:bytesize)
          in_flight += sizes.last
          batch << parts
        end
        @pool.submit_all(batch, **limits).each { |id| index[id] = ids.size; ids << id } unless batch.empty?

        pairs = if any_order
                  @pool.take_any_replies(MAP_SLICE)
                else
                  @pool.take_replies(ids[taken, MAP_SLICE]).each_with_index.map { |r, i| [ids[taken + i], r] }
                end
        # Only another waiter on the pool could take them: any_order is for
        # a pool with none.
        raise Error.new(ENOTFOUND, "#{items.size - taken} results were taken by another waiter") if pairs.empty?

        pairs.each do |id, reply|
          taken += 1
          done[i = index.fetch(id)] = true
          in_flight -= sizes[i]
          item = Marshalled.load(reply, where)
          values[i] = per_item ? item : item.value!
        rescue Exception # rubocop:disable Lint/RescueException
          abandon(ids.reject.with_index { |_, j| done[j] }, collect: !any_order)
          raise
        end
      end
      values
    end

    # Runs the block for each item, as #map does, and returns +items+ (the
    # ItemResults with +per_item+).
    def each(items, per_item: false, **limits)
      results = map(items, per_item: per_item, **limits)
      per_item ? results : items
    end

    %i[resize restart terminate stats workers worker_pids closed?].each do |verb|
      define_method(verb) { |*args| @pool.public_send(verb, *args) }
    end

    # Closes as Pool#close does (with +wait+, the tasks finish first).
    def close(wait: true)
      @pool.close(wait: wait)
    end

    # The ItemResult of task +id+, waiting up to +timeout+ seconds; a
    # raised error gets +where+ after the worker's backtrace. :nodoc:
    def collect(id, timeout, where)
      Marshalled.load(@pool.take_replies([id], timeout).first, where)
    end

    private

    # Cancels the tasks +ids+ (those finished stand) and, with +collect+,
    # takes their results, so that none is left in a pool that lives on.
    def abandon(ids, collect:)
      ids.each { |id| @pool.cancel(id) }
      @pool.wait_tasks(ids) if collect
    rescue Error
      nil
    end
  end

  class Pool
    # A pool whose workers run +block+ on each item submitted (a
    # Billiard::ForkPool; options as ForkPool.new):
    #
    #   pool = Billiard::Pool.fork(workers: 4) { |x| x * factor }
    #   pool.submit(21).value # => 42 (with factor 2)
    #   pool.map([1, 2, 3])   # => [2, 4, 6]
    #   pool.close
    def self.fork(**options, &block)
      ForkPool.new(**options, &block)
    end
  end

  # Runs the block on each item in supervised worker processes forked from
  # this one (the block's closure and everything loaded come along) and
  # returns the values in order, like Parallel.map. +workers+: how many
  # (default: one per CPU, never more than items). Limits per task:
  # soft_time_limit and hard_time_limit (seconds), soft_memory_limit and
  # hard_memory_limit (bytes), max_tasks_per_worker.
  #
  # An item whose block raises re-raises here with the worker's backtrace;
  # one whose worker dies raises Billiard::WorkerLost; one past its hard
  # limit Billiard::TimeLimitExceeded; the items not finished are then
  # cancelled. With +per_item+: true nothing raises and each item gets an
  # ItemResult (value or error), so one bad item loses nothing else.
  def self.map(items, workers: nil, per_item: false, **options, &block)
    raise ArgumentError, "Billiard.map needs a block" unless block

    items = items.to_a
    return [] if items.empty?

    workers = [workers || Etc.nprocessors, items.size].min
    where = caller
    # The pool is closed whatever interrupts the call (Billiard.closing):
    # at once after a raise, in order when every task is in.
    Thread.handle_interrupt(Object => :never) do
      Billiard.closing(ForkPool.new(workers: workers, **options, &block)) do |pool|
        pool.run(items, per_item: per_item, any_order: true, where: where)
      end
    end
  end

  # Billiard.map for the block's effects: returns +items+ (the ItemResults
  # with +per_item+).
  def self.each(items, per_item: false, **options, &block)
    results = map(items, per_item: per_item, **options, &block)
    per_item ? results : items
  end
end
