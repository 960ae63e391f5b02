package main

import (
	"context"
	"io"
)

func loadtestCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return exitOther
}
