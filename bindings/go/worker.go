package billiard

/*
#include <stdlib.h>
#include <billiard.h>
extern int billiardRunWorker(void);
extern int billiardRunWorkerHooks(void);
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Handler runs one task in a worker: the payload in, the reply out. An
// error fails the task with its text; so does a panic.
type Handler func(payload []byte) ([]byte, error)

var workerHandler Handler

// Hooks run in each worker around its life (WorkerMainHooks).
type Hooks struct {
	// AfterFork runs in each worker before its first task (under
	// ForkServer, in each forked worker, not in the server); an error is a
	// failed start, reported with its text.
	AfterFork func() error
	// AtExit runs when the worker exits in order (recycled, retired, pool
	// closed); not on a crash, a kill or terminate.
	AtExit func()
}

var workerHooks Hooks

// WorkerMain runs a worker program: call it from main when the program is
// started by a pool, and exit with the code it returns:
//
//	os.Exit(billiard.WorkerMain(handle))
//
// It serves tasks on the calling goroutine until the pool closes the
// channel (returns 0). A program not started by a pool gets a negative
// code at once (BILLIARD_EINVAL). Go's own signal handling stays as it
// is; a fault in the handler that Go turns into a panic fails the task.
func WorkerMain(handler Handler) int {
	workerHandler = handler
	return int(C.billiardRunWorker())
}

// WorkerMainHooks is WorkerMain with hooks run in the worker.
func WorkerMainHooks(handler Handler, hooks Hooks) int {
	workerHandler = handler
	workerHooks = hooks
	return int(C.billiardRunWorkerHooks())
}

//export billiardGoAfterFork
func billiardGoAfterFork() (rc C.int) {
	defer func() {
		if p := recover(); p != nil {
			setError(fmt.Sprintf("panic: %v", p))
			rc = 1
		}
	}()
	if workerHooks.AfterFork == nil {
		return 0
	}
	if err := workerHooks.AfterFork(); err != nil {
		setError(err.Error())
		return 1
	}
	return 0
}

//export billiardGoAtExit
func billiardGoAtExit() {
	defer func() { _ = recover() }()
	if workerHooks.AtExit != nil {
		workerHooks.AtExit()
	}
}

func setError(message string) {
	cmsg := C.CString(message)
	defer C.free(unsafe.Pointer(cmsg))
	C.billiard_worker_set_error(cmsg)
}

// SoftLimitReached reports, inside a worker, whether the running task's
// soft time limit has passed: a long handler checks it and returns early.
func SoftLimitReached() bool { return bool(C.billiard_worker_soft_limit_reached()) }

//export billiardGoHandle
func billiardGoHandle(input *C.uint8_t, length C.size_t, reply *C.billiard_reply) (rc C.int) {
	defer func() {
		if p := recover(); p != nil {
			fail(reply, fmt.Sprintf("panic: %v", p))
			rc = 1
		}
	}()
	out, err := workerHandler(C.GoBytes(unsafe.Pointer(input), C.int(length)))
	if err != nil {
		fail(reply, err.Error())
		return 1
	}
	if len(out) == 0 {
		return 0
	}
	return C.billiard_reply_write(reply, unsafe.Pointer(&out[0]), C.size_t(len(out)))
}

func fail(reply *C.billiard_reply, message string) {
	cmsg := C.CString(message)
	defer C.free(unsafe.Pointer(cmsg))
	C.billiard_reply_error(reply, cmsg)
}
