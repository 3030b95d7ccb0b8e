package billiard_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	billiard "github.com/billiard/billiard/bindings/go"
)

// kept is what the "grow" handler keeps alive in a worker.
var kept [][]byte

// point is a struct that crosses as JSON.
type point struct {
	X, Y int
	Name string
}

// The typed handlers the test binary serves as a NewSelf worker.
func init() {
	billiard.Handle("square", func(_ context.Context, n int) (int, error) {
		if n == -13 { // a crash
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
		if n < 0 {
			return 0, fmt.Errorf("negative: %d", n)
		}
		return n * n, nil
	})
	billiard.Handle("mirror", func(_ context.Context, p point) (point, error) {
		return point{X: p.Y, Y: p.X, Name: strings.ToUpper(p.Name)}, nil
	})
	billiard.Handle("pid", func(context.Context, struct{}) (int, error) { return os.Getpid(), nil })
	// Keeps 64 MiB, written, for the rest of the worker's life.
	billiard.Handle("grow", func(context.Context, struct{}) (int, error) {
		kept = append(kept, bytes.Repeat([]byte{1}, 64<<20))
		return os.Getpid(), nil
	})
	// Waits d, or until its context ends (the soft time limit).
	billiard.Handle("wait", func(ctx context.Context, d time.Duration) (string, error) {
		select {
		case <-time.After(d):
			return "waited", nil
		case <-ctx.Done():
			return "stopped: " + ctx.Err().Error(), nil
		}
	})
}

func newSelf(t *testing.T, opts *billiard.Options) *billiard.Pool {
	t.Helper()
	if opts == nil {
		opts = &billiard.Options{Workers: 2}
	}
	pool, err := billiard.NewSelf(opts)
	if err != nil {
		t.Fatalf("NewSelf: %v", err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

func minute(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestMapTyped(t *testing.T) {
	pool := newSelf(t, nil)
	items := make([]int, 200)
	for i := range items {
		items[i] = i
	}
	squares, err := billiard.Map[int, int](minute(t), pool, "square", items)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range squares {
		if v != i*i {
			t.Fatalf("item %d: %d", i, v)
		}
	}
	points, err := billiard.Map[point, point](minute(t), pool, "mirror", []point{{1, 2, "a"}, {3, 4, "b"}})
	if err != nil || points[0] != (point{2, 1, "A"}) || points[1] != (point{4, 3, "B"}) {
		t.Fatalf("got %v, %v", points, err)
	}
	empty, err := billiard.Map[int, int](minute(t), pool, "square", nil)
	if err != nil || len(empty) != 0 {
		t.Fatalf("got %v, %v", empty, err)
	}
}

func TestMapPerItemErrors(t *testing.T) {
	pool := newSelf(t, nil)
	values, err := billiard.Map[int, int](minute(t), pool, "square", []int{2, -1, 3, -13, 4})
	var mapErr *billiard.MapError
	if !errors.As(err, &mapErr) {
		t.Fatalf("want a *MapError, got %v", err)
	}
	if want := []int{4, 0, 9, 0, 16}; fmt.Sprint(values) != fmt.Sprint(want) {
		t.Fatalf("values %v, want %v", values, want)
	}
	for i, e := range mapErr.Errs {
		if (e == nil) != (i != 1 && i != 3) {
			t.Fatalf("item %d: error %v", i, e)
		}
	}
	var failed, lost *billiard.TaskError
	if !errors.As(mapErr.Errs[1], &failed) || failed.Result.Outcome != billiard.Failed ||
		string(failed.Result.Data) != "negative: -1" {
		t.Fatalf("item 1: %v", mapErr.Errs[1])
	}
	if !errors.As(mapErr.Errs[3], &lost) || lost.Result.Outcome != billiard.WorkerLost ||
		lost.Result.Signal != int(syscall.SIGKILL) {
		t.Fatalf("item 3: %v", mapErr.Errs[3])
	}
	if !strings.Contains(err.Error(), "2 of 5 items failed") {
		t.Fatalf("message: %v", err)
	}
}

func TestSubmitAwaitDecode(t *testing.T) {
	pool := newSelf(t, nil)
	id, err := billiard.Submit(pool, "square", 12)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := billiard.Await[int](minute(t), pool, id); err != nil || v != 144 {
		t.Fatalf("got %d, %v", v, err)
	}
	id, _ = billiard.Submit(pool, "mirror", point{5, 6, "c"})
	r, err := pool.WaitTask(minute(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := billiard.Decode[point](r); err != nil || p != (point{6, 5, "C"}) {
		t.Fatalf("got %v, %v", p, err)
	}
	// A response that does not decode into the type asked for.
	id, _ = billiard.Submit(pool, "square", 3)
	if _, err := billiard.Await[point](minute(t), pool, id); err == nil {
		t.Fatal("decoding an int as a struct succeeded")
	}
	// A request the handler cannot decode, and a name no handler has.
	id, _ = billiard.Submit(pool, "square", "three")
	if _, err := billiard.Await[int](minute(t), pool, id); err == nil || !strings.Contains(err.Error(), "decoding the request") {
		t.Fatalf("got %v", err)
	}
	id, _ = billiard.Submit(pool, "nosuch", 1)
	if _, err := billiard.Await[int](minute(t), pool, id); err == nil || !strings.Contains(err.Error(), `no handler named "nosuch"`) {
		t.Fatalf("got %v", err)
	}
	// What JSON cannot encode fails at submit, in the caller.
	if _, err := billiard.Submit(pool, "square", func() {}); err == nil {
		t.Fatal("a func was encoded")
	}
}

func TestTypedLimits(t *testing.T) {
	pool := newSelf(t, nil)
	id, _ := billiard.SubmitWith(pool, "wait", time.Minute, billiard.TaskOptions{SoftTimeLimit: 200 * time.Millisecond})
	if v, err := billiard.Await[string](minute(t), pool, id); err != nil || v != "stopped: context canceled" {
		t.Fatalf("soft limit: %q, %v", v, err)
	}
	id, _ = billiard.SubmitWith(pool, "wait", time.Minute, billiard.TaskOptions{HardTimeLimit: 200 * time.Millisecond})
	var te *billiard.TaskError
	if _, err := billiard.Await[string](minute(t), pool, id); !errors.As(err, &te) || te.Result.Outcome != billiard.TimeLimit {
		t.Fatalf("hard limit: %v", err)
	}
}

func TestMapContextEndsCancelsTheRest(t *testing.T) {
	pool := newSelf(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := billiard.Map[time.Duration, string](ctx, pool, "wait", []time.Duration{time.Minute, time.Minute, time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
	st, err := pool.Stats()
	if err != nil || st.Queued != 0 || st.Running != 0 || st.Uncollected != 0 {
		t.Fatalf("left behind: %+v, %v", st, err)
	}
	if v, err := billiard.Map[int, int](minute(t), pool, "square", []int{5}); err != nil || v[0] != 25 {
		t.Fatalf("after: %v, %v", v, err)
	}
}

func TestSelfPoolVerbs(t *testing.T) {
	pool := newSelf(t, &billiard.Options{Workers: 1})
	first, err := billiard.Map[struct{}, int](minute(t), pool, "pid", []struct{}{{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Resize(3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { pids, _ := pool.Workers(); return len(pids) == 3 })
	if err := pool.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		pids, _ := pool.Workers()
		for _, pid := range pids {
			if pid == first[0] {
				return false
			}
		}
		return len(pids) == 3
	})
	st, err := pool.Stats()
	if err != nil || st.Workers != 3 || st.Outcomes[billiard.OK] != 1 {
		t.Fatalf("stats %+v, %v", st, err)
	}
}

func TestSelfPoolSoftMemoryLimit(t *testing.T) {
	// Every task leaves 64 MiB in its worker, over the 32 MiB limit: each
	// runs on a fresh worker.
	pool := newSelf(t, &billiard.Options{Workers: 1, SoftMemoryLimit: 32 << 20})
	pids, err := billiard.Map[struct{}, int](minute(t), pool, "grow", make([]struct{}, 3))
	if err != nil {
		t.Fatal(err)
	}
	if pids[0] == pids[1] || pids[1] == pids[2] || pids[0] == pids[2] {
		t.Fatalf("a worker above the limit served again: %v", pids)
	}
	if st, _ := pool.Stats(); st.Recycles < 2 {
		t.Fatalf("recycles %d", st.Recycles)
	}
}

func TestPrefetchReachesThePool(t *testing.T) {
	if _, err := billiard.NewSelf(&billiard.Options{Workers: 1, Prefetch: 1000}); !errors.Is(err, billiard.ErrInvalid) {
		t.Fatalf("prefetch 1000: %v", err)
	}
	pool := newSelf(t, &billiard.Options{Workers: 2, Prefetch: 1})
	if v, err := billiard.Map[int, int](minute(t), pool, "square", []int{3, 4}); err != nil || v[1] != 16 {
		t.Fatalf("got %v, %v", v, err)
	}
}

func TestHandleRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "a\nb", "square"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatalf("Handle(%q) did not panic", name)
				}
			}()
			billiard.Handle(name, func(context.Context, int) (int, error) { return 0, nil })
		}()
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}
