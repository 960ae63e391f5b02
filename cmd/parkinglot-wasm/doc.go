// Command parkinglot-wasm is Parkinglot's web runtime: the core scheduler
// over the memory store, built with GOOS=js GOARCH=wasm and run inside a
// dedicated Worker or a SharedWorker by the ES module in web/.
//
// The bridge is one synchronous JavaScript function, installed as
// globalThis.parkinglotCall(op, argsJSON) and returning a JSON string:
//
//	{"ok": value, "notes": {...}}  or  {"error": {"code", "message", "field"}, "notes": {...}}
//
// Arguments and values are HTTP API v1's wire types (pkg/api) and error
// codes, so that a browser application sees the same semantics as a client
// of the native server. Every call runs to completion without blocking:
// core and the memory store never wait on anything but their own locks, so
// the worker's event loop is never stalled and no goroutine outlives a
// call. What a call caused that the worker must act on (a parked task
// started or ended, a mailbox that received messages, records to keep in
// IndexedDB) comes back with it as notes, drained on every call, so that
// Go never calls into JavaScript on its own.
//
// Long polls, permits that wait for their start, the sweeper's timer and
// the connections of the tabs are the worker's (web/engine.js): it knows
// from the notes when to look again.
//
// The engine itself (engine.go and the files beside it) builds on every
// platform, so that its tests run natively under the race detector; only
// main_js.go touches syscall/js.
package main
