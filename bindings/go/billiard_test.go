package billiard_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
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
	// A worker of a NewSelf pool serves the typed handlers of
	// handlers_test.go and exits here.
	billiard.Init()
	if os.Getenv("GOBILLIARD_TEST_WORKER") != "" {
		if dir := os.Getenv("GOBILLIARD_TEST_HOOKS"); dir != "" {
			os.Exit(billiard.WorkerMainHooks(handle, billiard.Hooks{
				AfterFork: func() error { hooked = os.Getpid(); return nil },
				AtExit: func() {
					_ = os.WriteFile(fmt.Sprintf("%s/atexit-%d", dir, os.Getpid()), nil, 0o600)
				},
			}))
		}
		os.Exit(billiard.WorkerMain(handle))
	}
	os.Exit(m.Run())
}

// hooked is the pid the after-fork hook ran in (0: none ran).
var hooked int

// handle runs one test command: "echo:X", "pid", "fail:MSG", "panic",
// "nil" (a nil pointer dereference), "crash" (SIGKILL itself), "exit:N",
// "sleep:DURATION", "soft:DURATION", "stubborn:DURATION" (SIGTERM
// ignored), "hooked".
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
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		d, _ := time.ParseDuration(arg)
		time.Sleep(d)
		return []byte("slept"), nil
	case "hooked":
		return []byte(strconv.Itoa(hooked)), nil
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
	if opts.Env == nil {
		opts.Env = map[string]string{}
	}
	opts.Env["GOBILLIARD_TEST_WORKER"] = "1"
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

func waitUntil(t *testing.T, check func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); !check(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("timed out")
		}
	}
}

func TestNoticesAndTaskStatus(t *testing.T) {
	pool := newPool(t, &billiard.Options{Notices: true})
	if n, err := pool.Notices(); err != nil || len(n) != 0 {
		t.Fatalf("notices before any task: %v %v", n, err)
	}
	id, _ := pool.SubmitWith([]byte("sleep:1s"), billiard.TaskOptions{Tag: 9})
	waitUntil(t, func() bool { return pool.Started(id) })
	st, err := pool.TaskStatus(id)
	if err != nil || st.State != billiard.Running || st.Tag != 9 || st.PID <= 0 ||
		time.Since(st.Started) > time.Minute {
		t.Fatalf("status %+v %v", st, err)
	}
	// The status reads the worker's progress page; the notice comes from its
	// ACK frame, which the supervisor may read a moment later (on a busy
	// machine, after the status already says Running).
	var notices []billiard.Notice
	waitUntil(t, func() bool {
		more, err := pool.Notices()
		if err != nil {
			t.Fatal(err)
		}
		notices = append(notices, more...)
		return len(notices) > 0
	})
	if more, _ := pool.Notices(); len(more) != 0 {
		t.Fatalf("more notices than one start: %+v", more)
	}
	if len(notices) != 1 || notices[0].Kind != billiard.NoticeStarted || notices[0].TaskID != id ||
		notices[0].PID != st.PID || notices[0].Tag != 9 {
		t.Fatalf("notices %+v", notices)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := pool.WaitTask(ctx, id)
	if err != nil || r.PID != st.PID {
		t.Fatalf("result %+v %v", r, err)
	}
	if _, err := pool.TaskStatus(id); !errors.Is(err, billiard.ErrNotFound) {
		t.Fatalf("status of a collected task: %v", err)
	}
	soft, _ := pool.SubmitWith([]byte("soft:10s"), billiard.TaskOptions{SoftTimeLimit: 200 * time.Millisecond})
	if r, _ := pool.WaitTask(ctx, soft); string(r.Data) != "reached" {
		t.Fatalf("soft: %+v", r)
	}
	notices, _ = pool.Notices()
	kinds := map[billiard.NoticeKind]bool{}
	for _, n := range notices {
		if n.TaskID == soft {
			kinds[n.Kind] = true
		}
	}
	if !kinds[billiard.NoticeStarted] || !kinds[billiard.NoticeSoftLimit] {
		t.Fatalf("notices of the soft-limited task: %+v", notices)
	}
}

func TestCancelWithSignalAndSignalWithoutCancel(t *testing.T) {
	pool := newPool(t, &billiard.Options{Workers: 1, KillGrace: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, _ := pool.Submit([]byte("stubborn:1m"))
	waitUntil(t, func() bool { return pool.Started(id) })
	time.Sleep(300 * time.Millisecond) // SIGTERM is ignored by now
	start := time.Now()
	if err := pool.CancelSignal(id, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r, err := pool.WaitTask(ctx, id)
	if err != nil || r.Outcome != billiard.Cancelled || r.Signal != int(syscall.SIGKILL) ||
		time.Since(start) > 30*time.Second {
		t.Fatalf("cancel with SIGKILL: %+v %v", r, err)
	}
	id, _ = pool.Submit([]byte("sleep:30s"))
	queued, _ := pool.Submit([]byte("echo:later"))
	waitUntil(t, func() bool { return pool.Started(id) })
	if sent, err := pool.Signal(queued, syscall.SIGTERM); sent || err != nil {
		t.Fatalf("a queued task was signalled: %v %v", sent, err)
	}
	if sent, err := pool.Signal(id, syscall.SIGTERM); !sent || err != nil {
		t.Fatalf("Signal: %v %v", sent, err)
	}
	r, _ = pool.WaitTask(ctx, id)
	if r.Outcome != billiard.WorkerLost || r.Signal != int(syscall.SIGTERM) {
		t.Fatalf("signalled task: %+v", r)
	}
	if r, _ := pool.WaitTask(ctx, queued); string(r.Data) != "later" {
		t.Fatalf("queued task: %+v", r)
	}
}

func TestWorkerListRestartResizeAndStats(t *testing.T) {
	pool := newPool(t, nil)
	id, _ := pool.Submit([]byte("sleep:1s"))
	waitUntil(t, func() bool { return pool.Started(id) })
	list, err := pool.WorkerList()
	busy := 0
	for _, w := range list {
		if w.TaskID == id && w.State == billiard.WorkerBusy {
			busy++
		}
	}
	if err != nil || len(list) != 2 || busy != 1 {
		t.Fatalf("worker list %+v %v", list, err)
	}
	before, _ := pool.Workers()
	if err := pool.Restart(); err != nil {
		t.Fatal(err)
	}
	run(t, pool, "echo:x")
	waitUntil(t, func() bool {
		now, _ := pool.Workers()
		for _, p := range now {
			for _, b := range before {
				if p == b {
					return false
				}
			}
		}
		return len(now) == 2
	})
	if err := pool.Resize(3); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { s, _ := pool.Stats(); return s.Workers == 3 && s.Target == 3 })
	s, _ := pool.Stats()
	if s.Outcomes[billiard.OK] < 2 || s.Recycles < 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestWorkerHooks(t *testing.T) {
	dir := t.TempDir()
	pool := newPool(t, &billiard.Options{Workers: 1, MaxTasks: 2,
		Env: map[string]string{"GOBILLIARD_TEST_HOOKS": dir}})
	pid := string(run(t, pool, "pid").Data)
	if got := string(run(t, pool, "hooked").Data); got != pid {
		t.Fatalf("after-fork hook ran in %s, not the worker %s", got, pid)
	}
	waitUntil(t, func() bool { _, err := os.Stat(dir + "/atexit-" + pid); return err == nil })
	crash := run(t, pool, "crash")
	last := string(run(t, pool, "pid").Data)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pool.Shutdown(ctx); err != nil { // orderly: Close alone terminates
		t.Fatal(err)
	}
	waitUntil(t, func() bool { _, err := os.Stat(dir + "/atexit-" + last); return err == nil })
	if _, err := os.Stat(fmt.Sprintf("%s/atexit-%d", dir, crash.PID)); err == nil {
		t.Fatal("a crashed worker ran its at-exit hook")
	}
}

func TestNoticesSwitchedWhileThePoolRuns(t *testing.T) {
	pool := newPool(t, &billiard.Options{Workers: 1})
	ctx := context.Background()
	ask := func(cmd string) {
		id, err := pool.Submit([]byte(cmd))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pool.WaitTask(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	ask("echo:quiet")
	if n, _ := pool.Notices(); len(n) != 0 {
		t.Fatalf("notices while off: %+v", n)
	}
	if err := pool.SetNotices(billiard.NoticeStarted); err != nil {
		t.Fatal(err)
	}
	id, err := pool.Submit([]byte("sleep:3s"))
	if err != nil {
		t.Fatal(err)
	}
	var seen []billiard.Notice
	waitUntil(t, func() bool {
		n, _ := pool.Notices()
		seen = append(seen, n...)
		return len(seen) > 0
	})
	if len(seen) != 1 || seen[0].Kind != billiard.NoticeStarted || seen[0].TaskID != id {
		t.Fatalf("notices: %+v", seen)
	}
	if st, err := pool.TaskStatus(id); err != nil || st.State != billiard.Running {
		t.Fatalf("noticed at its start: %+v %v", st, err)
	}
	if _, err := pool.WaitTask(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := pool.SetNotices(0); err != nil {
		t.Fatal(err)
	}
	ask("echo:quiet again")
	if n, _ := pool.Notices(); len(n) != 0 {
		t.Fatalf("notices after off: %+v", n)
	}
	old, err := pool.Workers()
	if err != nil || len(old) != 1 {
		t.Fatalf("workers: %v %v", old, err)
	}
	if err := pool.SetNotices(billiard.NoticeWorkerStarted | billiard.NoticeWorkerExited); err != nil {
		t.Fatal(err)
	}
	if err := pool.Restart(); err != nil {
		t.Fatal(err)
	}
	var exited, started bool
	waitUntil(t, func() bool {
		n, _ := pool.Notices()
		for _, k := range n {
			exited = exited || (k.Kind == billiard.NoticeWorkerExited && k.PID == old[0])
			started = started || (k.Kind == billiard.NoticeWorkerStarted && k.PID != old[0])
		}
		return exited && started
	})
	if err := pool.SetNotices(16); err == nil {
		t.Fatal("unknown notice kind accepted")
	}
}
