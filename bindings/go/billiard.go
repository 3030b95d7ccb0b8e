// Package billiard is the Go binding of libbilliard, a supervised process
// pool: worker processes run tasks given as bytes and return bytes, and
// every task ends with exactly one Result, whatever happens to its worker.
//
// Go cannot fork itself safely, so workers are separate programs (often
// the same binary, run in a worker mode) that call WorkerMain; the pool
// starts them with posix_spawn (Spawn, the default) or forks them from a
// fork server (ForkServer). For the same reason this binding offers no
// pool whose workers are forks of the host (the C API's
// billiard_config_set_fork_server_callback, which Python and Ruby use):
// a forked Go runtime does not survive. Results are copied into Go memory
// and the C results freed at once. No library thread ever calls into Go.
//
// Typed helpers sit on top, in the re-exec style: Handle registers a
// handler by name, Init (first in main) serves the handlers in a worker,
// NewSelf starts a pool of this program, and Map, Submit, Await and Decode
// carry values as JSON (handlers.go).
package billiard

/*
#cgo pkg-config: billiard
#include <stdlib.h>
#include <billiard.h>
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// ABIVersion is the ABI this binding is written for; New fails with an
// error naming both versions if the loaded library has another.
const ABIVersion = 100

// Version returns the loaded library's version, "MAJOR.MINOR.PATCH".
func Version() string { return C.GoString(C.billiard_version()) }

// StartMethod says how workers start. (The C API's FORK is not offered: a
// forked Go runtime does not survive.)
type StartMethod int

const (
	// Spawn starts each worker program with posix_spawn.
	Spawn StartMethod = C.BILLIARD_START_SPAWN
	// ForkServer starts the program once as a server that forks each
	// worker. The program must not have started other threads, so it is
	// not for Go worker programs; use it with C, Python or Ruby workers.
	ForkServer StartMethod = C.BILLIARD_START_FORKSERVER
)

// Outcome is how a task ended.
type Outcome int

// The outcomes (BILLIARD_OUTCOME_*).
const (
	OK          Outcome = C.BILLIARD_OUTCOME_OK
	Failed      Outcome = C.BILLIARD_OUTCOME_FAILED
	WorkerLost  Outcome = C.BILLIARD_OUTCOME_WORKER_LOST
	TimeLimit   Outcome = C.BILLIARD_OUTCOME_TIME_LIMIT
	Cancelled   Outcome = C.BILLIARD_OUTCOME_CANCELLED
	Abandoned   Outcome = C.BILLIARD_OUTCOME_ABANDONED
	MemoryLimit Outcome = C.BILLIARD_OUTCOME_MEMORY_LIMIT
)

func (o Outcome) String() string {
	names := [...]string{"OK", "FAILED", "WORKER_LOST", "TIME_LIMIT", "CANCELLED", "ABANDONED",
		"MEMORY_LIMIT"}
	if o >= 0 && int(o) < len(names) {
		return names[o]
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Error is a failed library call: its BILLIARD_E* code, the code's name
// and the library's message. Compare with errors.Is(err, ErrTimeout) etc.
type Error struct {
	Code    int
	Name    string
	Message string
}

func (e *Error) Error() string { return e.Name + ": " + e.Message }

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

func codeError(code C.int) *Error {
	return &Error{Code: int(code), Name: C.GoString(C.billiard_errname(code)),
		Message: C.GoString(C.billiard_strerror(code))}
}

// Errors to compare with errors.Is.
var (
	ErrInvalid  = codeError(C.BILLIARD_EINVAL)
	ErrTimeout  = codeError(C.BILLIARD_ETIMEDOUT)
	ErrClosed   = codeError(C.BILLIARD_ECLOSED)
	ErrFull     = codeError(C.BILLIARD_EFULL)
	ErrNotFound = codeError(C.BILLIARD_ENOTFOUND)
	ErrSpawn    = codeError(C.BILLIARD_ESPAWN)
	ErrRestarts = codeError(C.BILLIARD_ERESTARTS)
)

// call runs one library call and, on failure, reads its message on the
// same OS thread (billiard_last_error is per thread).
func call(f func() C.int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := f()
	if rc >= 0 {
		return nil
	}
	e := codeError(rc)
	if detail := C.billiard_last_error(); detail != nil {
		e.Message = C.GoString(detail)
	}
	return e
}

// Options configure a pool; the zero value is valid (one worker per CPU,
// Spawn, no limits).
type Options struct {
	Workers       int               // 0: one per usable CPU
	StartMethod   StartMethod       // 0 means Spawn
	Env           map[string]string // added to the workers' environment
	Dir           string            // the workers' working directory
	SoftTimeLimit time.Duration     // per task, from its start; 0: none
	HardTimeLimit time.Duration     // per task: the worker is stopped; 0: none
	KillGrace     time.Duration     // SIGTERM to SIGKILL; 0: the default (1 s)
	MaxTasks      uint64            // per worker, then it is replaced; 0: no limit
	// SoftMemoryLimit (bytes): a worker whose private memory is above it
	// after a task is replaced; 0: none.
	SoftMemoryLimit uint64
	// HardMemoryLimit (bytes): a worker's address space cannot grow past
	// it (a Go worker's failed allocation is fatal: MemoryLimit); 0: none.
	HardMemoryLimit uint64
	// Prefetch: most tasks in flight to one worker; 0: the library's
	// default (16, or 1 with a SoftMemoryLimit). 1 sends a task only to
	// an idle worker.
	Prefetch     int
	MaxQueued    int           // Submit blocks beyond this; 0: unbounded
	StartTimeout time.Duration // for New; 0: as long as it takes
	Notices      bool          // keep started and soft-limit notices for Notices
}

// TaskOptions are per-task settings for SubmitWith.
type TaskOptions struct {
	Tag           uint64        // returned in Result.Tag
	SoftTimeLimit time.Duration // 0: the pool's; negative: none
	HardTimeLimit time.Duration // 0: the pool's; negative: none
	NonBlocking   bool          // fail with ErrFull instead of blocking
}

// Result is a finished task, copied out of the library.
type Result struct {
	TaskID   uint64
	Tag      uint64
	Outcome  Outcome
	Data     []byte // the reply when OK; else what went wrong, as text
	PID      int    // the worker that ran it; 0 if none did
	ExitCode int    // the worker's exit code when it exited; -1 if not
	Signal   int    // the signal that killed the worker; 0 if none
	Queued   time.Duration
	Running  time.Duration
}

// Err is nil for an OK result, else a *TaskError.
func (r *Result) Err() error {
	if r.Outcome == OK {
		return nil
	}
	return &TaskError{Result: r}
}

// TaskError is a task that did not end OK.
type TaskError struct{ Result *Result }

func (e *TaskError) Error() string {
	return fmt.Sprintf("task %d: %s: %s", e.Result.TaskID, e.Result.Outcome, e.Result.Data)
}

// take copies a C result into Go memory and frees it.
func take(r *C.billiard_result) *Result {
	defer C.billiard_result_free(r)
	var n C.size_t
	data := C.billiard_result_data(r, &n)
	return &Result{
		TaskID:   uint64(C.billiard_result_task_id(r)),
		Tag:      uint64(C.billiard_result_tag(r)),
		Outcome:  Outcome(C.billiard_result_outcome(r)),
		Data:     C.GoBytes(unsafe.Pointer(data), C.int(n)),
		PID:      int(C.billiard_result_pid(r)),
		ExitCode: int(C.billiard_result_exit_code(r)),
		Signal:   int(C.billiard_result_signal(r)),
		Queued:   time.Duration(C.billiard_result_queued_us(r)) * time.Microsecond,
		Running:  time.Duration(C.billiard_result_running_us(r)) * time.Microsecond,
	}
}

// Pool is a pool of worker processes. Its methods may be called from any
// goroutine. Close it when done; a finalizer closes a Pool that is lost.
//
// The close rule: every call enters a gate; Close shuts it (later calls
// fail with ErrClosed), terminates the pool (the library wakes every
// waiting call and blocked Submit), waits for the calls in flight to
// return, and only then frees the pool.
type Pool struct {
	ptr      *C.billiard_pool // set once by New; freed by Close
	mu       sync.Mutex
	idle     sync.Cond // signalled when inFlight drops to 0
	inFlight int
	closed   bool
	freed    bool
}

// New starts a pool whose workers run argv (argv[0] is the program: a
// name without '/' is looked up in PATH). It returns once every worker is
// ready.
func New(argv []string, opts *Options) (*Pool, error) {
	if opts == nil {
		opts = &Options{}
	}
	if abi := int(C.billiard_abi_version()); abi != ABIVersion {
		return nil, &Error{Code: int(C.BILLIARD_EINVAL), Name: "BILLIARD_EINVAL",
			Message: fmt.Sprintf("libbilliard %s has ABI %d; this binding is written for %d",
				Version(), abi, ABIVersion)}
	}
	if len(argv) == 0 {
		return nil, &Error{Code: int(C.BILLIARD_EINVAL), Name: "BILLIARD_EINVAL",
			Message: "no worker program (argv is empty)"}
	}
	var cfg *C.billiard_config
	if err := call(func() C.int { return C.billiard_config_new(&cfg) }); err != nil {
		return nil, err
	}
	defer C.billiard_config_free(cfg)

	method := opts.StartMethod
	if method == 0 {
		method = Spawn
	}
	cargv := make([]*C.char, len(argv))
	for i, a := range argv {
		cargv[i] = C.CString(a)
		defer C.free(unsafe.Pointer(cargv[i]))
	}
	steps := []func() C.int{
		func() C.int { return C.billiard_config_set_workers(cfg, C.uint32_t(opts.Workers)) },
		func() C.int { return C.billiard_config_set_start_method(cfg, C.int(method)) },
		func() C.int {
			return C.billiard_config_set_worker_argv(cfg, &cargv[0], C.size_t(len(cargv)))
		},
		func() C.int { return C.billiard_config_set_max_queued(cfg, C.size_t(opts.MaxQueued)) },
	}
	for name, value := range opts.Env {
		cname, cvalue := C.CString(name), C.CString(value)
		defer C.free(unsafe.Pointer(cname))
		defer C.free(unsafe.Pointer(cvalue))
		steps = append(steps, func() C.int { return C.billiard_config_set_worker_env(cfg, cname, cvalue) })
	}
	if opts.Dir != "" {
		cdir := C.CString(opts.Dir)
		defer C.free(unsafe.Pointer(cdir))
		steps = append(steps, func() C.int { return C.billiard_config_set_worker_cwd(cfg, cdir) })
	}
	ms := func(d time.Duration) C.uint64_t { return C.uint64_t(d.Milliseconds()) }
	if opts.SoftTimeLimit > 0 {
		steps = append(steps, func() C.int { return C.billiard_config_set_soft_time_limit(cfg, ms(opts.SoftTimeLimit)) })
	}
	if opts.HardTimeLimit > 0 {
		steps = append(steps, func() C.int { return C.billiard_config_set_hard_time_limit(cfg, ms(opts.HardTimeLimit)) })
	}
	if opts.KillGrace > 0 {
		steps = append(steps, func() C.int { return C.billiard_config_set_kill_grace(cfg, ms(opts.KillGrace)) })
	}
	if opts.MaxTasks > 0 {
		steps = append(steps, func() C.int {
			return C.billiard_config_set_max_tasks_per_worker(cfg, C.uint64_t(opts.MaxTasks), 0)
		})
	}
	if opts.SoftMemoryLimit > 0 {
		steps = append(steps, func() C.int {
			return C.billiard_config_set_soft_memory_limit(cfg, C.uint64_t(opts.SoftMemoryLimit))
		})
	}
	if opts.HardMemoryLimit > 0 {
		steps = append(steps, func() C.int {
			return C.billiard_config_set_hard_memory_limit(cfg, C.uint64_t(opts.HardMemoryLimit))
		})
	}
	if opts.Prefetch > 0 {
		steps = append(steps, func() C.int { return C.billiard_config_set_prefetch(cfg, C.uint32_t(opts.Prefetch)) })
	}
	if opts.Notices {
		steps = append(steps, func() C.int {
			return C.billiard_config_set_notices(cfg, C.BILLIARD_NOTICE_STARTED|C.BILLIARD_NOTICE_SOFT_LIMIT)
		})
	}
	if opts.StartTimeout > 0 {
		steps = append(steps, func() C.int {
			return C.billiard_config_set_start_timeout(cfg, C.int64_t(opts.StartTimeout.Milliseconds()))
		})
	}
	for _, step := range steps {
		if err := call(step); err != nil {
			return nil, err
		}
	}
	p := &Pool{}
	p.idle.L = &p.mu
	if err := call(func() C.int { return C.billiard_pool_new(cfg, &p.ptr) }); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(p, (*Pool).Close)
	return p, nil
}

// use runs f with the pool's handle inside the gate, or fails with
// ErrClosed once Close has started.
func (p *Pool) use(f func(*C.billiard_pool) C.int) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return &Error{Code: int(C.BILLIARD_ECLOSED), Name: "BILLIARD_ECLOSED",
			Message: "the pool was closed"}
	}
	p.inFlight++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		if p.inFlight == 0 {
			p.idle.Broadcast()
		}
		p.mu.Unlock()
	}()
	return call(func() C.int { return f(p.ptr) })
}

// Submit submits a task (data is copied) and returns its id. It blocks
// while a bounded queue is full.
func (p *Pool) Submit(data []byte) (uint64, error) {
	return p.SubmitWith(data, TaskOptions{})
}

// SubmitWith submits a task with per-task options.
func (p *Pool) SubmitWith(data []byte, o TaskOptions) (uint64, error) {
	var opts C.billiard_task_opts
	C.billiard_task_opts_init(&opts)
	opts.tag = C.uint64_t(o.Tag)
	if o.NonBlocking {
		opts.flags = C.BILLIARD_SUBMIT_NONBLOCK
	}
	opts.soft_time_limit_ms = limitMs(o.SoftTimeLimit)
	opts.hard_time_limit_ms = limitMs(o.HardTimeLimit)
	var id C.uint64_t
	// The library copies the payload before it returns, so it reads the
	// Go slice in place (cgo allows that: a []byte holds no Go pointer).
	var ptr unsafe.Pointer
	if len(data) > 0 {
		ptr = unsafe.Pointer(&data[0])
	}
	err := p.use(func(pool *C.billiard_pool) C.int {
		return C.billiard_pool_submit(pool, ptr, C.size_t(len(data)), &opts, &id)
	})
	return uint64(id), err
}

func limitMs(d time.Duration) C.int64_t {
	switch {
	case d == 0:
		return C.BILLIARD_LIMIT_DEFAULT
	case d < 0:
		return C.BILLIARD_LIMIT_NONE
	case d < time.Millisecond:
		return 1
	}
	return C.int64_t(d.Milliseconds())
}

// waitSlice bounds one blocking call while a context can be cancelled:
// cancellation is seen within this time.
const waitSlice = 50 * time.Millisecond

// wait calls a blocking wait in slices until it returns a result, fails,
// or ctx ends (then ctx.Err() is returned).
func (p *Pool) wait(ctx context.Context, f func(*C.billiard_pool, C.int64_t, **C.billiard_result) C.int) (*Result, error) {
	for {
		timeout := C.int64_t(-1)
		if ctx.Done() != nil {
			slice := waitSlice
			if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < slice {
				slice = time.Until(deadline)
			}
			timeout = C.int64_t((slice + time.Millisecond - 1) / time.Millisecond)
			if timeout < 0 {
				timeout = 0
			}
		}
		var r *C.billiard_result
		err := p.use(func(pool *C.billiard_pool) C.int { return f(pool, timeout, &r) })
		if err == nil {
			return take(r), nil
		}
		if !errors.Is(err, ErrTimeout) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// Wait returns the next finished task's result, whichever it is. It fails
// with ErrNotFound when no task is pending and no result waits, and with
// ctx.Err() when ctx ends first.
func (p *Pool) Wait(ctx context.Context) (*Result, error) {
	return p.wait(ctx, func(pool *C.billiard_pool, t C.int64_t, r **C.billiard_result) C.int {
		return C.billiard_pool_wait(pool, t, r)
	})
}

// WaitTask returns the result of task id (ErrNotFound if it is not
// pending), or ctx.Err() when ctx ends first.
func (p *Pool) WaitTask(ctx context.Context, id uint64) (*Result, error) {
	return p.wait(ctx, func(pool *C.billiard_pool, t C.int64_t, r **C.billiard_result) C.int {
		return C.billiard_task_wait(pool, C.uint64_t(id), t, r)
	})
}

// Cancel cancels task id: it ends Cancelled (ErrNotFound if it finished).
func (p *Pool) Cancel(id uint64) error {
	return p.use(func(pool *C.billiard_pool) C.int { return C.billiard_task_cancel(pool, C.uint64_t(id)) })
}

// CancelSignal cancels task id as Cancel does, with sig as the first
// signal a running task's worker gets instead of SIGTERM (SIGKILL: at
// once; SIGKILL follows any other after the kill grace).
func (p *Pool) CancelSignal(id uint64, sig syscall.Signal) error {
	return p.use(func(pool *C.billiard_pool) C.int {
		return C.billiard_task_cancel_signal(pool, C.uint64_t(id), C.int(sig))
	})
}

// Signal sends sig to the worker running task id without cancelling it:
// true if it was sent, false if the task is not running (queued, not
// started, finished). It never reaches the task after it on that worker.
func (p *Pool) Signal(id uint64, sig syscall.Signal) (bool, error) {
	err := p.use(func(pool *C.billiard_pool) C.int {
		return C.billiard_task_signal(pool, C.uint64_t(id), C.int(sig))
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// TaskState is where a task is (TaskStatus).
type TaskState int

// The task states (BILLIARD_TASK_*).
const (
	Queued  TaskState = C.BILLIARD_TASK_QUEUED
	Sent    TaskState = C.BILLIARD_TASK_SENT
	Running TaskState = C.BILLIARD_TASK_RUNNING
	Done    TaskState = C.BILLIARD_TASK_DONE
)

// Status is where a task is now.
type Status struct {
	State   TaskState
	PID     int       // the worker holding or running it; 0 if none
	Tag     uint64    //
	Started time.Time // while Running: when it started; else zero
}

// TaskStatus says where task id is now; ErrNotFound once its result was
// collected.
func (p *Pool) TaskStatus(id uint64) (Status, error) {
	var info C.billiard_task_info
	info.struct_size = C.uint32_t(unsafe.Sizeof(info))
	err := p.use(func(pool *C.billiard_pool) C.int {
		return C.billiard_task_status(pool, C.uint64_t(id), &info)
	})
	if err != nil {
		return Status{}, err
	}
	st := Status{State: TaskState(info.state), PID: int(info.pid), Tag: uint64(info.tag)}
	if info.started_us != 0 {
		st.Started = time.UnixMicro(int64(info.started_us))
	}
	return st, nil
}

// Started reports whether a worker started task id: it runs, or it
// finished after running (true once its result was collected).
func (p *Pool) Started(id uint64) bool {
	st, err := p.TaskStatus(id)
	if errors.Is(err, ErrNotFound) {
		return true
	}
	return err == nil && (st.State == Running || (st.State == Done && st.PID != 0))
}

// NoticeKind is what a Notice says.
type NoticeKind int

// The notice kinds (BILLIARD_NOTICE_*).
const (
	NoticeStarted       NoticeKind = C.BILLIARD_NOTICE_STARTED
	NoticeSoftLimit     NoticeKind = C.BILLIARD_NOTICE_SOFT_LIMIT
	NoticeWorkerStarted NoticeKind = C.BILLIARD_NOTICE_WORKER_STARTED // PID; no task
	NoticeWorkerExited  NoticeKind = C.BILLIARD_NOTICE_WORKER_EXITED  // PID; no task
)

// Notice is something that happened to a task before its result.
type Notice struct {
	Kind    NoticeKind
	TaskID  uint64
	Tag     uint64
	PID     int           // the worker running the task
	Time    time.Time     // when
	Elapsed time.Duration // Started: from submit; SoftLimit: from the start
}

// SetNotices changes which notices the pool keeps from now on (a set of
// NoticeKind bits; 0: none), as Options.Notices does at the start: a task
// that starts after NoticeStarted is turned on has its notice at once; one
// that started before has it with its result if it is still on then.
// Notices already waiting stay until read.
func (p *Pool) SetNotices(kinds NoticeKind) error {
	return p.use(func(pool *C.billiard_pool) C.int {
		return C.billiard_pool_set_notices(pool, C.uint32_t(kinds))
	})
}

// Notices returns every notice waiting, oldest first (none: empty),
// without waiting or taking a result. Kept only with Options.Notices; Fd
// is readable while one waits.
func (p *Pool) Notices() ([]Notice, error) {
	batch := make([]C.billiard_notice, 64)
	out := []Notice{}
	for {
		var n C.size_t
		err := p.use(func(pool *C.billiard_pool) C.int {
			return C.billiard_pool_notices(pool, &batch[0], C.size_t(len(batch)), &n)
		})
		if err != nil {
			return out, err
		}
		for _, c := range batch[:int(n)] {
			out = append(out, Notice{Kind: NoticeKind(c.kind), TaskID: uint64(c.task_id),
				Tag: uint64(c.tag), PID: int(c.pid), Time: time.UnixMicro(int64(c.time_us)),
				Elapsed: time.Duration(c.elapsed_us) * time.Microsecond})
		}
		if int(n) < len(batch) {
			return out, nil
		}
	}
}

// Resize grows or shrinks the pool (shrinking retires workers after the
// tasks they hold).
func (p *Pool) Resize(workers int) error {
	return p.use(func(pool *C.billiard_pool) C.int { return C.billiard_pool_resize(pool, C.uint32_t(workers)) })
}

// Restart replaces every worker, each after the tasks it holds.
func (p *Pool) Restart() error {
	return p.use(func(pool *C.billiard_pool) C.int { return C.billiard_pool_restart(pool) })
}

// Stats are the pool's counters now.
type Stats struct {
	Workers, Busy, Idle, Target  int
	Queued, Running, Uncollected uint64
	Outcomes                     map[Outcome]uint64 // tasks finished so far
	Restarts, Recycles           uint64
}

// Stats returns the pool's counters.
func (p *Pool) Stats() (Stats, error) {
	var s C.billiard_stats
	s.struct_size = C.uint32_t(unsafe.Sizeof(s))
	if err := p.use(func(pool *C.billiard_pool) C.int { return C.billiard_pool_stats(pool, &s) }); err != nil {
		return Stats{}, err
	}
	out := Stats{Workers: int(s.workers), Busy: int(s.busy), Idle: int(s.idle), Target: int(s.target),
		Queued: uint64(s.queued), Running: uint64(s.running), Uncollected: uint64(s.uncollected),
		Restarts: uint64(s.restarts), Recycles: uint64(s.recycles), Outcomes: map[Outcome]uint64{}}
	for o := OK; o <= MemoryLimit; o++ {
		out.Outcomes[o] = uint64(s.outcomes[o])
	}
	return out, nil
}

// WorkerState is a worker's state (BILLIARD_WORKER_*).
type WorkerState int

// The worker states.
const (
	WorkerStarting WorkerState = C.BILLIARD_WORKER_STARTING
	WorkerIdle     WorkerState = C.BILLIARD_WORKER_IDLE
	WorkerBusy     WorkerState = C.BILLIARD_WORKER_BUSY
	WorkerRetiring WorkerState = C.BILLIARD_WORKER_RETIRING
	WorkerStopping WorkerState = C.BILLIARD_WORKER_STOPPING
)

// Worker is one worker process now.
type Worker struct {
	PID       int
	State     WorkerState
	TaskID    uint64 // the task it runs now; 0 if none
	TasksDone uint64
	RSSBytes  uint64
}

// WorkerList returns every worker now (all of them: the list grows to
// what the library reports).
func (p *Pool) WorkerList() ([]Worker, error) {
	infos := make([]C.billiard_worker_info, 64)
	for {
		var n C.size_t
		err := p.use(func(pool *C.billiard_pool) C.int {
			return C.billiard_pool_workers(pool, &infos[0], C.size_t(len(infos)), &n)
		})
		if err != nil {
			return []Worker{}, err
		}
		if int(n) > len(infos) {
			infos = make([]C.billiard_worker_info, int(n)+16)
			continue
		}
		out := make([]Worker, 0, int(n))
		for _, w := range infos[:int(n)] {
			out = append(out, Worker{PID: int(w.pid), State: WorkerState(w.state),
				TaskID: uint64(w.task_id), TasksDone: uint64(w.tasks_done), RSSBytes: uint64(w.rss_bytes)})
		}
		return out, nil
	}
}

// Fd is a file descriptor that is readable while results or notices wait,
// for a poll loop. The pool owns it: never read or close it. -1 after Close.
func (p *Pool) Fd() int {
	fd := -1
	_ = p.use(func(pool *C.billiard_pool) C.int { fd = int(C.billiard_pool_fd(pool)); return 0 })
	return fd
}

// Workers returns the pids of all the pool's workers now.
func (p *Pool) Workers() ([]int, error) {
	list, err := p.WorkerList()
	pids := make([]int, 0, len(list))
	for _, w := range list {
		pids = append(pids, w.PID)
	}
	return pids, err
}

// Shutdown stops taking tasks, lets queued and running ones finish (their
// results stay collectable with Wait until Close), and waits until every
// worker has exited, or until ctx ends.
func (p *Pool) Shutdown(ctx context.Context) error {
	if err := p.use(func(pool *C.billiard_pool) C.int { return C.billiard_pool_close(pool) }); err != nil {
		return err
	}
	for {
		err := p.use(func(pool *C.billiard_pool) C.int {
			return C.billiard_pool_join(pool, C.int64_t(waitSlice/time.Millisecond))
		})
		if !errors.Is(err, ErrTimeout) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// Close stops every worker now (unfinished tasks end Abandoned), reaps
// them and frees the pool: afterwards no worker process exists. Calls in
// flight on other goroutines return at once (a Wait with its result or
// ErrNotFound, a blocked Submit with ErrClosed); calls after Close fail
// with ErrClosed. Close is idempotent, and returns once the pool is freed.
func (p *Pool) Close() error {
	p.mu.Lock()
	first := !p.closed
	p.closed = true
	p.mu.Unlock()
	if first {
		runtime.SetFinalizer(p, nil)
		C.billiard_pool_terminate(p.ptr)
	}
	p.mu.Lock()
	for p.inFlight > 0 || (!first && !p.freed) {
		p.idle.Wait()
	}
	p.mu.Unlock()
	if first {
		C.billiard_pool_free(p.ptr)
		p.mu.Lock()
		p.freed = true
		p.idle.Broadcast()
		p.mu.Unlock()
	}
	return nil
}
