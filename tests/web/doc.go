// Package web tests Parkinglot's web runtime in a real browser: headless
// Chromium (the Debian chromium package; .ci/run installs it) loads the
// demo page from a loopback server, two tabs share one SharedWorker, and
// the pages' own observations are checked: capacity across the tabs,
// exactly one outcome per task, permits freed when a tab closes, the
// mailbox and audit trail kept across a reload.
//
// The test builds the wasm itself (GOOS=js GOARCH=wasm) and assembles the
// page from web/, so that it tests the source as it is. It fails, never
// skips, when chromium is missing. Its waits are bounded by counts, each
// with a generous hang guard; no verdict depends on the machine's speed.
package web
