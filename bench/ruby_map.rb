# frozen_string_literal: true

# Ruby: Billiard.map against Parallel.map (the parallel gem, Debian's
# ruby-parallel), both with 4 worker processes forked from this one, in
# the same run, and against the floor: items.map in this process (no
# processes at all).
#
#   ruby bench/ruby_map.rb [--quick]      (make bench-ruby)
#
# Rows: 8, 1,000 and 100,000 small items (an Integer doubled), and 100
# items of 1 MiB (a String sent and returned). Each figure is the median
# wall time of the whole call (pool start and stop included) over the
# repetitions (7; --quick: 3, and 10,000 in place of 100,000). Prints a
# Markdown table (docs/PERFORMANCE.md keeps the latest).
require "parallel"
require_relative "../bindings/ruby/lib/billiard"

QUICK = ARGV.include?("--quick")
REPEAT = QUICK ? 3 : 7
WORKERS = 4
MIB = "x".b * (1 << 20)

ROWS = [
  ["8 small items", Array.new(8) { |i| i }],
  ["1,000 small items", Array.new(1000) { |i| i }],
  [QUICK ? "10,000 small items" : "100,000 small items", Array.new(QUICK ? 10_000 : 100_000) { |i| i }],
  ["100 items of 1 MiB", Array.new(100) { MIB }]
].freeze

def work(x)
  x.is_a?(Integer) ? x * 2 : x
end

SUBJECTS = {
  "Billiard.map" => ->(items) { Billiard.map(items, workers: WORKERS) { |x| work(x) } },
  "Parallel.map" => ->(items) { Parallel.map(items, in_processes: WORKERS) { |x| work(x) } },
  "floor: items.map" => ->(items) { items.map { |x| work(x) } }
}.freeze

def median_seconds(items, run)
  expected = items.map { |x| work(x) }
  times = Array.new(REPEAT) do
    GC.start
    start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    values = run.call(items)
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - start
    raise "wrong values" unless values == expected

    elapsed
  end
  times.sort[times.size / 2]
end

def ms(seconds)
  format(seconds < 0.1 ? "%.2f" : "%.0f", seconds * 1000)
end

puts "| row | Billiard.map | Parallel.map | items.map (floor) | Parallel / Billiard | Billiard / floor |"
puts "|---|---|---|---|---|---|"
ROWS.each do |name, items|
  t = SUBJECTS.transform_values { |run| median_seconds(items, run) }
  ours, peer, floor = t.values_at("Billiard.map", "Parallel.map", "floor: items.map")
  puts "| #{name} | #{ms(ours)} ms | #{ms(peer)} ms | #{ms(floor)} ms | " \
       "#{format('%.2f', peer / ours)}x | #{format('%.0f', ours / floor)}x |"
end
