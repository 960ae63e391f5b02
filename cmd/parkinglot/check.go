package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/pebblestore"
)

// checkCmd verifies an embedded store's data directory offline.
func checkCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data", "", "the embedded store's data `directory` (store.path of the configuration)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: parkinglot check --data DIR\n\nVerifies an embedded store offline, with the server stopped: every value's checksum and\nPebble's, and the store's invariants (pool counters, parking queues, indexes, mailbox\ncursors). Prints what it checked and every finding. Exit 0 if it found nothing.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 || *dir == "" {
		fs.Usage()
		return exitUsage
	}
	rep, err := pebblestore.Check(*dir, pebblestore.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "parkinglot check: %v\n", err)
		if errors.Is(err, pebblestore.ErrInUse) {
			fmt.Fprintln(stderr, "parkinglot check: a server has the store open; stop it and check again")
		}
		return exitOther
	}
	printCheck(stdout, &rep)
	if !rep.OK() {
		return exitOther
	}
	return exitOK
}

// taskStates orders the states in check's output.
var taskStates = []core.State{
	core.StateRunning, core.StateParked, core.StateSucceeded, core.StateFailed,
	core.StateExpired, core.StateRejected, core.StateCancelled, core.StateTimedOut,
}

func printCheck(w io.Writer, rep *pebblestore.CheckReport) {
	fmt.Fprintf(w, "checked %s\n", rep.Path)
	shutdown := "clean"
	if !rep.Clean {
		shutdown = "not clean (the next start recovers from the write-ahead log; checked as recovered)"
	}
	fmt.Fprintf(w, "  format %d, last sequence number %d, last shutdown %s\n", rep.Format, rep.Seq, shutdown)
	fmt.Fprintf(w, "  pebble: table files: %d, entries read by the level check: %d\n", rep.Tables, rep.Points)
	fmt.Fprintf(w, "  pools: %d\n", rep.Pools)
	var states []string
	for _, s := range taskStates {
		if n := rep.Tasks[s]; n > 0 {
			states = append(states, fmt.Sprintf("%s %d", s, n))
		}
	}
	var other []string
	for s, n := range rep.Tasks {
		if !slices.Contains(taskStates, s) {
			other = append(other, fmt.Sprintf("%q %d", s, n))
		}
	}
	slices.Sort(other)
	states = append(states, other...)
	tasks := fmt.Sprintf("%d", rep.TaskCount())
	if len(states) > 0 {
		tasks += " (" + strings.Join(states, ", ") + ")"
	}
	fmt.Fprintf(w, "  tasks: %s\n", tasks)
	fmt.Fprintf(w, "  idempotency keys: %d\n", rep.Keys)
	fmt.Fprintf(w, "  parking-queue messages: %d\n", rep.Queued)
	fmt.Fprintf(w, "  mailboxes: %d, messages: %d, acknowledged cursors: %d\n", rep.Mailboxes, rep.Messages, rep.Acks)
	fmt.Fprintf(w, "  audit events: %d\n", rep.Events)
	if rep.OK() {
		fmt.Fprintln(w, "no findings")
		return
	}
	if len(rep.Findings) == 1 {
		fmt.Fprintln(w, "1 finding:")
	} else {
		fmt.Fprintf(w, "%d findings:\n", len(rep.Findings))
	}
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "  %s\n", f)
	}
}
