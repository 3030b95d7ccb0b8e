package billiard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Typed helpers in the re-exec style: the binary registers its handlers
// by name (Handle), calls Init first thing in main, and starts a pool of
// itself (NewSelf). Init in a worker serves the handlers and exits; in
// the host it returns at once.
//
//	func main() {
//		billiard.Handle("square", func(ctx context.Context, n int) (int, error) { return n * n, nil })
//		billiard.Init()
//		pool, _ := billiard.NewSelf(&billiard.Options{Workers: 4})
//		defer pool.Close()
//		squares, err := billiard.Map[int, int](context.Background(), pool, "square", []int{1, 2, 3})
//	}
//
// Encoding: JSON (encoding/json) for requests and responses, so any type
// encoding/json handles crosses, with its rules (exported fields only;
// numbers in an interface{} come back as float64). A task's payload is
// the handler's name, a newline, then the JSON request; its reply is the
// JSON response.

// workerModeEnv marks a process NewSelf started as a worker (the pool
// passes it in the environment; BILLIARD_* names are removed by the pool).
const workerModeEnv = "GOBILLIARD_SELF_WORKER"

// typedHandler runs one registered handler on a JSON request.
type typedHandler func(ctx context.Context, request []byte) ([]byte, error)

var (
	handlersMu sync.RWMutex
	handlers   = map[string]typedHandler{}
)

// Handle registers fn as the handler named name, for the workers of pools
// made with NewSelf: register every handler before Init runs (in an init
// function, or in main before Init). The request and the response cross
// as JSON. An error fn returns fails that task with its text; a panic
// does too. ctx is cancelled when the task's soft time limit passes.
// Handle panics on an empty name, a name with a newline, or a name
// registered twice: those are mistakes in the program.
func Handle[Req, Resp any](name string, fn func(context.Context, Req) (Resp, error)) {
	if name == "" || strings.Contains(name, "\n") {
		panic(fmt.Sprintf("billiard.Handle: invalid handler name %q", name))
	}
	handlersMu.Lock()
	defer handlersMu.Unlock()
	if _, ok := handlers[name]; ok {
		panic(fmt.Sprintf("billiard.Handle: handler %q registered twice", name))
	}
	handlers[name] = func(ctx context.Context, request []byte) ([]byte, error) {
		var req Req
		if err := json.Unmarshal(request, &req); err != nil {
			return nil, fmt.Errorf("handler %q: decoding the request: %w", name, err)
		}
		resp, err := fn(ctx, req)
		if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	}
}

// Init serves the registered handlers and exits when this process is a
// worker of a pool made with NewSelf; otherwise it returns at once. Call
// it first thing in main, after the handlers are registered.
func Init() {
	if os.Getenv(workerModeEnv) == "" {
		return
	}
	os.Exit(WorkerMain(serveTyped))
}

// serveTyped is the worker's handler: it finds the handler the payload
// names and runs it, with a context cancelled at the soft time limit.
func serveTyped(payload []byte) ([]byte, error) {
	name, request, ok := bytes.Cut(payload, []byte{'\n'})
	if !ok {
		return nil, errors.New("billiard: a task without a handler name")
	}
	handlersMu.RLock()
	fn := handlers[string(name)]
	handlersMu.RUnlock()
	if fn == nil {
		return nil, fmt.Errorf("billiard: no handler named %q in this worker", name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := watchSoftLimit(cancel)
	defer watch.end()
	return fn(ctx, request)
}

// softLimitPoll is how often a running typed handler's soft time limit
// is checked (a load from shared memory).
const softLimitPoll = 10 * time.Millisecond

// softWatch checks a task's soft time limit every softLimitPoll from a
// timer, and cancels the task's context once it passed. A timer, not a
// goroutine per task: a task shorter than the interval costs a timer
// added and stopped.
type softWatch struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel context.CancelFunc
	ended  bool
}

func watchSoftLimit(cancel context.CancelFunc) *softWatch {
	w := &softWatch{cancel: cancel}
	w.mu.Lock() // check waits until timer is set
	w.timer = time.AfterFunc(softLimitPoll, w.check)
	w.mu.Unlock()
	return w
}

func (w *softWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.ended:
	case SoftLimitReached():
		w.cancel()
	default:
		w.timer.Reset(softLimitPoll)
	}
}

// end stops the checks (the task returned).
func (w *softWatch) end() {
	w.mu.Lock()
	w.ended = true
	w.timer.Stop()
	w.mu.Unlock()
}

// NewSelf starts a pool whose workers run this program (os.Executable)
// and serve the handlers registered with Handle (Init must run first in
// main). opts as for New; its Env gets the variable that marks a worker.
func NewSelf(opts *Options) (*Pool, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("billiard: finding this program: %w", err)
	}
	o := Options{}
	if opts != nil {
		o = *opts
	}
	env := map[string]string{workerModeEnv: "1"}
	for k, v := range o.Env {
		env[k] = v
	}
	o.Env = env
	return New([]string{self}, &o)
}

// Submit submits item, encoded as JSON, to the handler named name and
// returns its task id; Await (or Decode on a Result) gives its response.
func Submit[T any](pool *Pool, name string, item T) (uint64, error) {
	return SubmitWith(pool, name, item, TaskOptions{})
}

// SubmitWith is Submit with per-task options (time limits, a tag).
func SubmitWith[T any](pool *Pool, name string, item T, o TaskOptions) (uint64, error) {
	request, err := json.Marshal(item)
	if err != nil {
		return 0, fmt.Errorf("billiard: encoding the request for %q: %w", name, err)
	}
	payload := make([]byte, 0, len(name)+1+len(request))
	payload = append(append(append(payload, name...), '\n'), request...)
	return pool.SubmitWith(payload, o)
}

// Decode gives a typed handler's response from its task's Result: the
// decoded value when the task ended OK, else a *TaskError (its Outcome
// says what happened: Failed with the handler's error text, WorkerLost,
// TimeLimit, ...).
func Decode[R any](r *Result) (R, error) {
	var resp R
	if err := r.Err(); err != nil {
		return resp, err
	}
	if err := json.Unmarshal(r.Data, &resp); err != nil {
		return resp, fmt.Errorf("billiard: decoding the response of task %d: %w", r.TaskID, err)
	}
	return resp, nil
}

// Await waits for task id (from Submit) and decodes its response, as
// Decode does; ctx.Err() if ctx ends first (the task goes on).
func Await[R any](ctx context.Context, pool *Pool, id uint64) (R, error) {
	r, err := pool.WaitTask(ctx, id)
	if err != nil {
		var zero R
		return zero, err
	}
	return Decode[R](r)
}

// MapError is Map's error when some items failed: Errs[i] is item i's
// error (nil for the items that succeeded, whose values Map returned), a
// *TaskError for a task that did not end OK (errors.As on Errs[i]).
type MapError struct {
	Errs []error
}

func (e *MapError) Error() string {
	failed, first := 0, error(nil)
	for _, err := range e.Errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	return fmt.Sprintf("billiard: %d of %d items failed; the first: %v", failed, len(e.Errs), first)
}

// Map runs the handler named name on every item in the pool's workers and
// returns the responses in order. Every item runs, whatever happens to
// the others: if some fail, Map returns all the values (the zero value
// for a failed item) and a *MapError with each item's error. If ctx ends
// or the pool closes first, the items not finished are cancelled (their
// workers stopped) and Map returns that error and no values.
func Map[T, R any](ctx context.Context, pool *Pool, name string, items []T) ([]R, error) {
	ids := make([]uint64, 0, len(items))
	for _, item := range items {
		id, err := Submit(pool, name, item)
		if err != nil {
			abandon(pool, ids)
			return nil, err
		}
		ids = append(ids, id)
	}
	values := make([]R, len(items))
	errs := make([]error, len(items))
	failed := false
	for i, id := range ids {
		r, err := pool.WaitTask(ctx, id)
		if err != nil {
			abandon(pool, ids[i:])
			return nil, err
		}
		values[i], errs[i] = Decode[R](r)
		failed = failed || errs[i] != nil
	}
	if failed {
		return values, &MapError{Errs: errs}
	}
	return values, nil
}

// abandon cancels the tasks ids and takes their results, so none is left
// in the pool (a closed pool has none to take).
func abandon(pool *Pool, ids []uint64) {
	for _, id := range ids {
		_ = pool.Cancel(id)
	}
	for _, id := range ids {
		_, _ = pool.WaitTask(context.Background(), id)
	}
}
