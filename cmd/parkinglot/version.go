package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// buildInfo is what the binary knows of its own build.
type buildInfo struct {
	// Version is the main module's version: a release such as v1.2.0, a
	// pseudo-version, or (devel) for a build from a work tree.
	Version string
	// Commit is the VCS revision, with its time and "(modified)" when the
	// tree had uncommitted changes; "unknown" without VCS stamping
	// (go build -buildvcs=false, go run, go test).
	Commit string
	// Go is the toolchain's version and the target, such as
	// "go1.26.0 linux/amd64".
	Go string
}

// readBuildInfo returns the running binary's build information.
func readBuildInfo() buildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return buildInfoOf(bi)
}

// buildInfoOf describes bi, which may be nil or lack VCS settings.
func buildInfoOf(bi *debug.BuildInfo) buildInfo {
	v := buildInfo{Version: "unknown", Commit: "unknown", Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
	}
	var rev, at, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		v.Commit = rev
		if at != "" {
			v.Commit += " " + at
		}
		if modified == "true" {
			v.Commit += " (modified)"
		}
	}
	return v
}

// write prints v as "key: value" lines: version, commit, go.
func (v buildInfo) write(w io.Writer) {
	fmt.Fprintf(w, "version: %s\ncommit: %s\ngo: %s\n", v.Version, v.Commit, v.Go)
}

// versionCmd prints the binary's version, commit and Go version.
func versionCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "parkinglot version: unexpected argument %q\n", args[0])
		return exitUsage
	}
	readBuildInfo().write(stdout)
	return exitOK
}
