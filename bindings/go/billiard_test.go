package billiard_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	billiard "github.com/billiard/billiard/bindings/go"
)

// The test binary is also the worker program: started by a pool with
// GOBILLIARD_TEST_WORKER set, it serves tasks instead of running tests.
func TestMain(m *testing.M) {
	if os.Getenv("GOBILLIARD_TEST_WORKER") != "" {
		os.Exit(billiard.WorkerMain(handle))
	}
	os.Exit(m.Run())
}

// handle runs one test command: "echo:X", "pid", "fail:MSG", "panic",
// "nil" (a nil pointer dereference), "crash" (SIGKILL itself), "exit:N",
// "sleep:DURATION", "soft:DURATION".
func handle(payload []byte) ([]byte, error) {
	command, arg, _ := strings.Cut(string(payload), ":")
	switch command {
	case "echo":
		return []byte(arg), nil
	case "pid":
		return []byte(strconv.Itoa(os.Getpid())), nil
	case "fail":
		return nil, errors.New(arg)
	case "panic":
		panic("on purpose")
	case "nil":
		var p *[4]int
		return []byte(strconv.Itoa(p[1])), nil
	case "crash":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
	case "exit":
		code, _ := strconv.Atoi(arg)
		os.Exit(code)
	case "sleep":
		d, _ := time.ParseDuration(arg)
		time.Sleep(d)
		return []byte("slept"), nil
	case "soft":
		d, _ := time.ParseDuration(arg)
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			if billiard.SoftLimitReached() {
				return []byte("reached"), nil
			}
		}
		return []byte("not reached"), nil
	}
	return nil, fmt.Errorf("unknown command %q", command)
}

func newPool(t *testing.T, opts *billiard.Options) *billiard.Pool {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if opts == nil {
		opts = &billiard.Options{}
	}
	if opts.Workers == 0 {
		opts.Workers = 2
	}
	opts.Env = map[string]string{"GOBILLIARD_TEST_WORKER": "1"}
	pool, err := billiard.New([]string{self}, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

func run(t *testing.T, pool *billiard.Pool, payload string) *billiard.Result {
	t.Helper()
	id, err := pool.Submit([]byte(payload))
	if err != nil {
		t.Fatalf("Submit(%q): %v", payload, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := pool.WaitTask(ctx, id)
	if err != nil {
		t.Fatalf("WaitTask(%q): %v", payload, err)
	}
	return r
}

func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func TestRoundTrip(t *testing.T) {
	pool := newPool(t, nil)
	r := run(t, pool, "echo:hello")
	if r.Outcome != billiard.OK || string(r.Data) != "hello" || r.Err() != nil || r.PID <= 0 {
		t.Fatalf("got %+v", r)
	}
}

func TestEveryTaskGetsExactlyOneResult(t *testing.T) {
	pool := newPool(t, nil)
	want := map[uint64]string{}
	for i := 0; i < 300; i++ {
		id, err := pool.SubmitWith([]byte(fmt.Sprintf("echo:%d", i)), billiard.TaskOptions{Tag: uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		want[id] = strconv.Itoa(i)
	}
	ctx := context.Background()
	seen := map[uint64]bool{}
	for {
		r, err := pool.Wait(ctx)
		if errors.Is(err, billiard.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if seen[r.TaskID] || want[r.TaskID] != string(r.Data) || strconv.FormatUint(r.Tag, 10) != want[r.TaskID] {
			t.Fatalf("unexpected %+v", r)
		}
		seen[r.TaskID] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("%d results for %d tasks", len(seen), len(want))
	}
}

func TestFailuresAreOutcomes(t *testing.T) {
	pool := newPool(t, nil)
	r := run(t, pool, "fail:boom")
	var taskErr *billiard.TaskError
	if r.Outcome != billiard.Failed || string(r.Data) != "boom" || !errors.As(r.Err(), &taskErr) {
		t.Fatalf("got %+v", r)
	}
	r = run(t, pool, "panic")
	if r.Outcome != billiard.Failed || !strings.Contains(string(r.Data), "panic: on purpose") {
		t.Fatalf("got %+v", r)
	}
	// Go keeps its own SIGSEGV handler in a worker, so a nil dereference is
	// a recoverable panic, not a dead worker.
	r = run(t, pool, "nil")
	if r.Outcome != billiard.Failed || !strings.Contains(string(r.Data), "nil pointer dereference") {
		t.Fatalf("got %+v: %s", r, r.Data)
	}
}

func TestWorkerCrash(t *testing.T) {
	pool := newPool(t, &billiard.Options{Workers: 1})
	before := run(t, pool, "pid")
	r := run(t, pool, "crash")
	if r.Outcome != billiard.WorkerLost || r.Signal != int(syscall.SIGKILL) || r.ExitCode != -1 {
		t.Fatalf("got %+v", r)
	}
	r = run(t, pool, "exit:3")
	if r.Outcome != billiard.WorkerLost || r.ExitCode != 3 {
		t.Fatalf("got %+v", r)
	}
	after := run(t, pool, "pid")
	if after.Outcome != billiard.OK || string(after.Data) == string(before.Data) {
		t.Fatalf("no replacement worker: %s then %s", before.Data, after.Data)
	}
}

func TestContextTimeoutAndCancel(t *testing.T) {
	pool := newPool(t, &billiard.Options{Workers: 1})
	id, err := pool.Submit([]byte("sleep:30s"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := pool.WaitTask(ctx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitTask: %v", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("the deadline was noticed after %v", waited)
	}
	// A cancelled context: noticed, and the task is still pending.
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel2() }()
	if _, err := pool.Wait(ctx2); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait: %v", err)
	}
	if err := pool.Cancel(id); err != nil {
		t.Fatal(err)
	}
	r, err := pool.WaitTask(context.Background(), id)
	if err != nil || r.Outcome != billiard.Cancelled {
		t.Fatalf("got %+v, %v", r, err)
	}
	if err := pool.Cancel(id); !errors.Is(err, billiard.ErrNotFound) {
		t.Fatalf("second Cancel: %v", err)
	}
}

func TestTimeLimits(t *testing.T) {
	pool := newPool(t, &billiard.Options{Workers: 1, HardTimeLimit: 300 * time.Millisecond,
		SoftTimeLimit: 100 * time.Millisecond, KillGrace: 500 * time.Millisecond})
	if r := run(t, pool, "soft:20s"); string(r.Data) != "reached" {
		t.Fatalf("soft limit: %+v %s", r, r.Data)
	}
	if r := run(t, pool, "sleep:30s"); r.Outcome != billiard.TimeLimit {
		t.Fatalf("hard limit: %+v", r)
	}
	id, _ := pool.SubmitWith([]byte("sleep:500ms"), billiard.TaskOptions{HardTimeLimit: -1, SoftTimeLimit: -1})
	if r, err := pool.WaitTask(context.Background(), id); err != nil || r.Outcome != billiard.OK {
		t.Fatalf("no limit: %+v %v", r, err)
	}
}

func TestErrorsCarryCodeAndMessage(t *testing.T) {
	_, err := billiard.New([]string{"/nonexistent/go-billiard-worker"}, &billiard.Options{Workers: 1})
	var e *billiard.Error
	if !errors.Is(err, billiard.ErrSpawn) || !errors.As(err, &e) || !strings.Contains(e.Message, "/nonexistent/go-billiard-worker") {
		t.Fatalf("New: %v", err)
	}
	if e.Code != -6 || e.Name != "BILLIARD_ESPAWN" {
		t.Fatalf("got %+v", e)
	}
	if _, err := billiard.New(nil, nil); !errors.Is(err, billiard.ErrInvalid) {
		t.Fatalf("New(nil): %v", err)
	}
	pool := newPool(t, nil)
	if _, err := pool.WaitTask(context.Background(), 424242); !errors.Is(err, billiard.ErrNotFound) {
		t.Fatalf("WaitTask(unknown): %v", err)
	}
	pool.Close()
	if _, err := pool.Submit([]byte("echo:late")); !errors.Is(err, billiard.ErrClosed) {
		t.Fatalf("Submit after Close: %v", err)
	}
}

func TestShutdownThenClose(t *testing.T) {
	pool := newPool(t, nil)
	id, _ := pool.Submit([]byte("sleep:200ms"))
	pids, _ := pool.Workers()
	if err := pool.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Submit([]byte("echo:late")); !errors.Is(err, billiard.ErrClosed) {
		t.Fatalf("Submit after Shutdown: %v", err)
	}
	r, err := pool.WaitTask(context.Background(), id)
	if err != nil || r.Outcome != billiard.OK {
		t.Fatalf("the task ran to the end: %+v %v", r, err)
	}
	pool.Close()
	pool.Close()
	for _, pid := range pids {
		if alive(pid) {
			t.Fatalf("worker %d outlived the pool", pid)
		}
	}
}

func TestFinalizerFreesALostPool(t *testing.T) {
	self, _ := os.Executable()
	pool, err := billiard.New([]string{self}, &billiard.Options{Workers: 2,
		Env: map[string]string{"GOBILLIARD_TEST_WORKER": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	pids, _ := pool.Workers()
	if len(pids) != 2 {
		t.Fatalf("workers %v", pids)
	}
	pool = nil
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		runtime.GC()
		if !alive(pids[0]) && !alive(pids[1]) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("workers %v outlived their lost pool", pids)
}

func TestFdIsReadableWhileResultsWait(t *testing.T) {
	pool := newPool(t, nil)
	fd := pool.Fd()
	if fd < 0 {
		t.Fatalf("Fd: %d", fd)
	}
	if _, err := pool.Submit([]byte("echo:x")); err != nil {
		t.Fatal(err)
	}
	var readable syscall.FdSet
	readable.Bits[fd/64] |= 1 << (uint(fd) % 64)
	timeout := syscall.Timeval{Sec: 30}
	n, err := syscall.Select(fd+1, &readable, nil, nil, &timeout)
	if err != nil || n != 1 {
		t.Fatalf("select: %d %v", n, err)
	}
	r, err := pool.Wait(context.Background())
	if err != nil || string(r.Data) != "x" {
		t.Fatalf("got %+v %v", r, err)
	}
	pool.Close()
	if pool.Fd() != -1 {
		t.Fatal("a closed pool still gives its fd")
	}
}

// One close rule: Close terminates (waking every Wait, even one on
// context.Background(), and every blocked Submit), waits for the calls in
// flight, then frees; calls afterwards fail with ErrClosed. Before, Close
// waited for a Wait(context.Background()) to end (forever).
func TestCloseWhileOthersWaitAndSubmit(t *testing.T) {
	for round := 0; round < 5; round++ {
		pool := newPool(t, &billiard.Options{MaxQueued: 4})
		pids, _ := pool.Workers()
		done := make(chan error, 13)
		for i := 0; i < 13; i++ {
			go func(i int) {
				for {
					var err error
					if i == 12 {
						// A wait with no deadline for a task that would
						// run for an hour.
						var id uint64
						if id, err = pool.Submit([]byte("sleep:1h")); err == nil {
							_, err = pool.WaitTask(context.Background(), id)
						}
					} else if i%2 == 0 {
						var id uint64
						if id, err = pool.Submit([]byte("sleep:50ms")); err == nil {
							_, err = pool.WaitTask(context.Background(), id)
						}
					} else {
						_, err = pool.Wait(context.Background())
						if errors.Is(err, billiard.ErrNotFound) {
							err = nil
						}
						if err == nil {
							_, err = pool.Workers()
						}
					}
					if err != nil {
						if errors.Is(err, billiard.ErrClosed) || errors.Is(err, billiard.ErrNotFound) {
							err = nil
						}
						done <- err
						return
					}
				}
			}(i)
		}
		time.Sleep(200 * time.Millisecond)
		closed := make(chan struct{})
		// Several goroutines close at once; each returns once it is freed.
		go func() {
			var wg sync.WaitGroup
			for c := 0; c < 3; c++ {
				wg.Add(1)
				go func() { defer wg.Done(); pool.Close() }()
			}
			wg.Wait()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatal("Close hung behind calls in flight")
		}
		for i := 0; i < 13; i++ {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("a call failed: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("a goroutine hung after Close")
			}
		}
		if _, err := pool.Submit([]byte("echo:late")); !errors.Is(err, billiard.ErrClosed) {
			t.Fatalf("Submit after Close: %v", err)
		}
		for _, pid := range pids {
			if alive(pid) {
				t.Fatalf("worker %d outlived Close", pid)
			}
		}
	}
}
