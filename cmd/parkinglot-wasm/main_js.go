//go:build js && wasm

package main

import (
	"syscall/js"
)

// main installs globalThis.parkinglotCall and parks forever: the worker
// calls in for every operation.
func main() {
	e := newEngine()
	js.Global().Set("parkinglotCall", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 2 || args[0].Type() != js.TypeString || args[1].Type() != js.TypeString {
			return string(e.fail(errBadCall))
		}
		return string(e.Call(args[0].String(), []byte(args[1].String())))
	}))
	// Tell the worker that the function is in place.
	if ready := js.Global().Get("parkinglotReady"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {}
}
