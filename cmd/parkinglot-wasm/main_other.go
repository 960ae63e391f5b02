//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

// main explains how this command is built: it runs only as WebAssembly,
// inside the worker of web/.
func main() {
	fmt.Fprintln(os.Stderr, "parkinglot-wasm runs only as WebAssembly: build it with `make wasm` (GOOS=js GOARCH=wasm) and load it with web/parkinglot.js")
	os.Exit(2)
}
