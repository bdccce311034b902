// Go code that runs long, for test/t/120_plugins_go_rust.pl: what a Go
// runtime inside a backend does to cancellation and to signals.
//
//	spin       works until host->interrupted says the statement is being
//	           cancelled, then returns TT_ERROR (gives up after 120 s)
//	spin_deaf  works for 1.5 s without ever asking, then returns the row
//	preempt    forces a garbage collection while a goroutine spins in a
//	           loop with no preemption point: the collection waits for Go's
//	           asynchronous preemption (SIGURG sent with tgkill); the row
//	           gets "gc_ms", how long it took
package main

/*
#include <stdint.h>
#include <stdlib.h>
#include "talaria_transform.h"

int go_error(tt_call *call, const char *msg);
int go_interrupted(tt_call *call);
int go_put_int(tt_call *call, tt_value *obj, const char *key, size_t keylen, int64_t n);
*/
import "C"

import (
	"crypto/sha256"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

var sink [32]byte

// about a millisecond of work, with garbage for the collector
func work() {
	for i := 0; i < 200; i++ {
		buf := make([]byte, 256)
		buf[0] = sink[0]
		sink = sha256.Sum256(buf)
	}
}

func fail(call *C.tt_call, msg string) C.int {
	cmsg := C.CString(msg)
	defer C.free(unsafe.Pointer(cmsg))
	return C.go_error(call, cmsg)
}

//export spin
func spin(call *C.tt_call) C.int {
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		work()
		if C.go_interrupted(call) != 0 {
			return fail(call, "interrupted")
		}
	}
	return fail(call, "never interrupted")
}

//export spin_deaf
func spin_deaf(call *C.tt_call) C.int {
	end := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(end) {
		work()
	}
	return C.TT_OK
}

var stop int32

//go:noinline
func tightLoop(done chan<- bool) {
	// no call, no allocation: only asynchronous preemption stops it
	for i := 0; i < 1<<34 && atomic.LoadInt32(&stop) == 0; i++ {
	}
	done <- true
}

//export preempt
func preempt(call *C.tt_call) C.int {
	atomic.StoreInt32(&stop, 0)
	done := make(chan bool)
	go tightLoop(done)
	time.Sleep(20 * time.Millisecond) // let it start on another thread
	start := time.Now()
	runtime.GC()
	gcMs := time.Since(start).Milliseconds()
	atomic.StoreInt32(&stop, 1)
	<-done
	key := C.CString("gc_ms")
	defer C.free(unsafe.Pointer(key))
	if C.go_put_int(call, call.row, key, 5, C.int64_t(gcMs)) == 0 {
		return C.TT_ERROR
	}
	return C.TT_OK
}

func main() {}
