// A talaria_transform plugin in Go: Talaria's trim, and a computed column.
//
//	trim     removes key1 .. key5 from the row, in place, allocating nothing
//	digest   a string: the SHA-256 of the row's "body" string, in hex
//
// Build (this directory, Debian's golang-go):
//
//	CGO_CFLAGS="-I$(pg_config --includedir-server)/extension/talaria_transform" \
//	  go build -buildmode=c-shared -o talaria_go.so .
package main

/*
#include <stdlib.h>
#include "talaria_transform.h"

// in host.c
int go_error(tt_call *call, const char *msg);
tt_value *go_get(tt_call *call, const tt_value *obj, const char *key, size_t keylen);
tt_value *go_alloc_value(tt_call *call);
int go_set_string(tt_call *call, tt_value *dst, const char *s, size_t len);
*/
import "C"

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"unsafe"
)

// The views of tt_value's union that this plugin reads (cgo shows the
// union as bytes).
type object struct {
	members *C.tt_member
	count   C.uint32_t
	cap     C.uint32_t
}

func asObject(v *C.tt_value) *object { return (*object)(unsafe.Pointer(&v.u)) }
func asStr(v *C.tt_value) *C.tt_str  { return (*C.tt_str)(unsafe.Pointer(&v.u)) }

// bytes views a tt_str without copying: valid during the call only.
func bytes(s *C.tt_str) []byte {
	if s.len == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(s.ptr)), int(s.len))
}

func fail(call *C.tt_call, msg string) C.int {
	cmsg := C.CString(msg)
	defer C.free(unsafe.Pointer(cmsg))
	return C.go_error(call, cmsg)
}

// A panic must not cross into the server (it would end the backend):
// every exported function turns one into TT_ERROR.
func recoverTo(call *C.tt_call, status *C.int) {
	if r := recover(); r != nil {
		*status = fail(call, fmt.Sprint("panic: ", r))
	}
}

//export trim
func trim(call *C.tt_call) (status C.int) {
	defer recoverTo(call, &status)
	row := call.row
	if row._type != C.TT_OBJECT {
		return fail(call, fmt.Sprintf("expected an object, got type %d", row._type))
	}
	obj := asObject(row)
	members := unsafe.Slice(obj.members, int(obj.count))
	kept := 0
	for i := range members {
		k := bytes(&members[i].key)
		if len(k) == 4 && k[0] == 'k' && k[1] == 'e' && k[2] == 'y' && k[3] >= '1' && k[3] <= '5' {
			continue
		}
		members[kept] = members[i]
		kept++
	}
	obj.count = C.uint32_t(kept)
	return C.TT_OK
}

var bodyKey = C.CString("body") // once: no malloc per row

//export digest
func digest(call *C.tt_call) (status C.int) {
	defer recoverTo(call, &status)
	body := C.go_get(call, call.row, bodyKey, 4)
	if body == nil || body._type != C.TT_STRING {
		return fail(call, `"body" must be a string`)
	}
	sum := sha256.Sum256(bytes(asStr(body)))
	var text [2 * sha256.Size]byte
	hex.Encode(text[:], sum[:])

	// the result lives in the host's arena; set_string copies the text
	result := C.go_alloc_value(call)
	if result == nil ||
		C.go_set_string(call, result, (*C.char)(unsafe.Pointer(&text[0])), C.size_t(len(text))) == 0 {
		return C.TT_ERROR // the host reports the exhausted arena
	}
	call.result = result
	return C.TT_OK
}

func main() {}
