// Command go_map measures the Go binding's typed Map against what a Go
// service does without a pool: one os/exec per item (this program run
// again, the item on stdin, the response on stdout, JSON both ways), and
// against the floor: the same function called in this process.
//
//	go run . [-quick]      (make bench-go)
//
// Rows: Map over 8, 1,000 and 100,000 small items (an int doubled) with 4
// workers, pool start and stop included; os/exec over 8 and 1,000 items,
// 4 at a time (100,000 would take minutes). Each figure is the median
// wall time over the repetitions (7; -quick: 3, and 10,000 in place of
// 100,000). Prints a Markdown table (docs/PERFORMANCE.md keeps the latest).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	billiard "github.com/billiard/billiard/bindings/go"
)

const workers = 4

// execOneEnv makes this program double the one item on its stdin.
const execOneEnv = "GO_MAP_BENCH_EXEC_ONE"

func double(_ context.Context, n int) (int, error) { return n * 2, nil }

func main() {
	billiard.Handle("double", double)
	billiard.Init()
	if os.Getenv(execOneEnv) != "" {
		var n int
		if err := json.NewDecoder(os.Stdin).Decode(&n); err != nil {
			os.Exit(2)
		}
		v, _ := double(context.Background(), n)
		_ = json.NewEncoder(os.Stdout).Encode(v)
		return
	}
	quick := flag.Bool("quick", false, "3 repetitions, 10,000 items in place of 100,000")
	flag.Parse()
	repeat, big := 7, 100_000
	if *quick {
		repeat, big = 3, 10_000
	}
	fmt.Println("| items | Map (4 workers) | os/exec per item (4 at a time) | in-process calls (floor) | exec / Map | Map / floor |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, n := range []int{8, 1000, big} {
		items := make([]int, n)
		for i := range items {
			items[i] = i
		}
		ours := median(repeat, func() { check(mapPool(items), items) })
		floor := median(repeat, func() { check(inProcess(items), items) })
		peer, ratio := "-", "-"
		if n <= 1000 {
			d := median(repeat, func() { check(execEach(items), items) })
			peer, ratio = ms(d), fmt.Sprintf("%.1fx", float64(d)/float64(ours))
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %.0fx |\n", count(n), ms(ours), peer, ms(floor), ratio,
			float64(ours)/float64(floor))
	}
}

func mapPool(items []int) []int {
	pool, err := billiard.NewSelf(&billiard.Options{Workers: workers})
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	values, err := billiard.Map[int, int](context.Background(), pool, "double", items)
	if err != nil {
		panic(err)
	}
	return values
}

func inProcess(items []int) []int {
	values := make([]int, len(items))
	for i, n := range items {
		// Encoded and decoded as the pool does, so the floor is the work
		// without processes, not without JSON.
		request, _ := json.Marshal(n)
		var m int
		_ = json.Unmarshal(request, &m)
		v, _ := double(context.Background(), m)
		reply, _ := json.Marshal(v)
		_ = json.Unmarshal(reply, &values[i])
	}
	return values
}

func execEach(items []int) []int {
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	values := make([]int, len(items))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				cmd := exec.Command(self)
				cmd.Env = append(os.Environ(), execOneEnv+"=1")
				cmd.Stdin = strings.NewReader(fmt.Sprint(items[i]))
				out, err := cmd.Output()
				if err != nil {
					panic(err)
				}
				if err := json.Unmarshal(out, &values[i]); err != nil {
					panic(err)
				}
			}
		}()
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
	return values
}

func check(values, items []int) {
	for i, n := range items {
		if values[i] != n*2 {
			panic(fmt.Sprintf("item %d: %d", i, values[i]))
		}
	}
}

func median(repeat int, run func()) time.Duration {
	times := make([]time.Duration, repeat)
	for i := range times {
		start := time.Now()
		run()
		times[i] = time.Since(start)
	}
	sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
	return times[repeat/2]
}

func ms(d time.Duration) string {
	if d < 100*time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
