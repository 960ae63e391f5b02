package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
)

// clientCommand is one CLI command that calls the server.
type clientCommand struct {
	usage string // arguments, after the command name
	help  string
	args  int // positional arguments required (-1: 0 or 1)
	flags func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

// env is what a client command runs with.
type env struct {
	c      *client.Client
	json   bool
	stdin  io.Reader
	stdout io.Writer
}

var clientCommands = map[string]clientCommand{
	"submit":    {usage: "POOL", help: "submit a task to POOL", args: 1, flags: submitFlags},
	"status":    {usage: "TASK-ID", help: "show a task", args: 1, flags: statusFlags},
	"complete":  {usage: "TASK-ID --lease L [--status failed]", help: "complete a running task", args: 1, flags: completeFlags},
	"heartbeat": {usage: "TASK-ID --lease L", help: "extend a running task's lease", args: 1, flags: heartbeatFlags},
	"cancel":    {usage: "TASK-ID", help: "cancel a parked or running task", args: 1, flags: cancelFlags},
	"mailbox":   {usage: "RECIPIENT", help: "read a recipient's mailbox", args: 1, flags: mailboxFlags},
	"audit":     {usage: "", help: "read the audit trail of the caller's tenant", args: 0, flags: auditFlags},
	"pools":     {usage: "[POOL]", help: "show every pool, or one", args: -1, flags: poolsFlags},
	"claim":     {usage: "POOL [--max N] [--wait D]", help: "claim parked tasks of a pull pool, as a worker", args: 1, flags: claimFlags},
}

// usageError is a bad command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

func runClientCommand(ctx context.Context, name string, cmd clientCommand, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", envOr("PARKINGLOT_SERVER", client.DefaultServer), "server `URL` (env PARKINGLOT_SERVER)")
	token := fs.String("token", os.Getenv("PARKINGLOT_TOKEN"), "bearer `token` (env PARKINGLOT_TOKEN)")
	asJSON := fs.Bool("json", false, "print the server's JSON, for scripts")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the whole command (a mailbox --wait adds to it)")
	do := cmd.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: parkinglot %s %s\n%s\n\nflags:\n", name, cmd.usage, cmd.help)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	switch {
	case cmd.args >= 0 && len(pos) != cmd.args, cmd.args < 0 && len(pos) > 1:
		fmt.Fprintf(stderr, "usage: parkinglot %s %s\n", name, cmd.usage)
		return exitUsage
	}
	c, err := client.New(*server, *token)
	if err != nil {
		fmt.Fprintf(stderr, "parkinglot %s: %v\n", name, err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout+mailboxWait)
	defer cancel()
	err = do(ctx, &env{c: c, json: *asJSON, stdin: stdin, stdout: stdout}, pos)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	var ce *client.Error
	if *asJSON && errors.As(err, &ce) {
		writeJSON(stdout, api.Error{Error: api.ErrorDetail{Code: ce.Code, Message: ce.Message, Field: ce.Field}, Task: ce.Task})
	}
	fmt.Fprintf(stderr, "parkinglot %s: %v\n", name, err)
	return code
}

// mailboxWait is the longest long poll; the command's timeout allows for it.
const mailboxWait = 20 * time.Second

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	switch client.StatusOf(err) {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return exitUsage
	case http.StatusNotFound:
		return exitNotFound
	case http.StatusConflict:
		return exitConflict
	case http.StatusTooManyRequests:
		return exitRejected
	case http.StatusUnauthorized, http.StatusForbidden:
		return exitUnauthorized
	}
	return exitOther
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// readValue reads a JSON flag value: inline, @FILE, or - for stdin.
func readValue(v string, stdin io.Reader, flagName string) (json.RawMessage, error) {
	var b []byte
	var err error
	switch {
	case v == "":
		return nil, nil
	case v == "-":
		b, err = io.ReadAll(stdin)
	case strings.HasPrefix(v, "@"):
		b, err = os.ReadFile(v[1:])
	default:
		b = []byte(v)
	}
	if err != nil {
		return nil, usagef("--%s: %v", flagName, err)
	}
	if !json.Valid(b) {
		return nil, usagef("--%s: not valid JSON", flagName)
	}
	return json.RawMessage(b), nil
}

func submitFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	key := fs.String("key", "", "idempotency `key`")
	recipient := fs.String("recipient", "", "mailbox `recipient` of the task's messages (default: the tenant)")
	payload := fs.String("payload", "", "payload `JSON`, @FILE, or - for stdin")
	maxWait := fs.String("max-wait", "", "how long the task may stay parked, e.g. 30s (default: the pool's)")
	deadline := fs.String("deadline", "", "RFC 3339 time by which the task must have started")
	runTimeout := fs.String("run-timeout", "", "lease length, e.g. 5m (default: the pool's)")
	return func(ctx context.Context, e *env, args []string) error {
		p, err := readValue(*payload, e.stdin, "payload")
		if err != nil {
			return err
		}
		res, err := e.c.Submit(ctx, args[0], api.SubmitRequest{
			Key: *key, Recipient: *recipient, Payload: p,
			MaxWait: *maxWait, Deadline: *deadline, RunTimeout: *runTimeout,
		})
		if err != nil {
			var ce *client.Error
			if errors.As(err, &ce) && ce.Task != nil && !e.json {
				printTask(e.stdout, ce.Task)
			}
			return err
		}
		if e.json {
			writeJSON(e.stdout, api.TaskBody{Task: res.Task})
			return nil
		}
		if res.Replayed {
			fmt.Fprintln(e.stdout, "(the key names an earlier submission; this is that task)")
		}
		printTask(e.stdout, &res.Task)
		return nil
	}
}

func statusFlags(*flag.FlagSet) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		t, err := e.c.Task(ctx, args[0])
		if err != nil {
			return err
		}
		return showTask(e, &t)
	}
}

func completeFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	lease := fs.String("lease", "", "the task's lease token (from its started message)")
	status := fs.String("status", "succeeded", "outcome: succeeded or failed")
	result := fs.String("result", "", "result `JSON`, @FILE, or - for stdin")
	msg := fs.String("error", "", "error message of a failed task")
	return func(ctx context.Context, e *env, args []string) error {
		if *lease == "" {
			return usagef("--lease is required")
		}
		r, err := readValue(*result, e.stdin, "result")
		if err != nil {
			return err
		}
		t, err := e.c.Complete(ctx, args[0], api.CompleteRequest{Lease: *lease, Status: *status, Result: r, Error: *msg})
		if err != nil {
			return err
		}
		return showTask(e, &t)
	}
}

func heartbeatFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	lease := fs.String("lease", "", "the task's lease token")
	extend := fs.Duration("extend", 0, "new lease length from now (default: the task's run timeout)")
	return func(ctx context.Context, e *env, args []string) error {
		if *lease == "" {
			return usagef("--lease is required")
		}
		if *extend < 0 {
			return usagef("--extend must be positive")
		}
		until, err := e.c.Heartbeat(ctx, args[0], *lease, *extend)
		if err != nil {
			return err
		}
		if e.json {
			writeJSON(e.stdout, api.HeartbeatResponse{LeaseExpiresAt: until})
			return nil
		}
		fmt.Fprintf(e.stdout, "lease of %s extended to %s\n", args[0], until.Format(time.RFC3339Nano))
		return nil
	}
}

func cancelFlags(*flag.FlagSet) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		t, err := e.c.Cancel(ctx, args[0])
		if err != nil {
			return err
		}
		return showTask(e, &t)
	}
}

func mailboxFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	after := fs.String("after", "", "return messages after this `cursor`")
	limit := fs.Int("limit", 0, "at most this many messages (default: the server's, 100)")
	wait := fs.Duration("wait", 0, "long poll: wait up to this long for a message (at most 20s)")
	ack := fs.Bool("ack", false, "acknowledge the messages shown, so they are not returned again")
	return func(ctx context.Context, e *env, args []string) error {
		if *wait < 0 || *wait > mailboxWait {
			return usagef("--wait must be 0-%s", mailboxWait)
		}
		page, err := e.c.Mailbox(ctx, args[0], client.MailboxOptions{After: *after, Limit: *limit, Wait: *wait})
		if err != nil {
			return err
		}
		if *ack && len(page.Messages) > 0 {
			if err := e.c.Ack(ctx, args[0], page.Next); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
		}
		if e.json {
			if page.Messages == nil {
				page.Messages = []api.Message{}
			}
			writeJSON(e.stdout, page)
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CURSOR\tAT\tTYPE\tTASK\tPOOL\tLEASE/RESULT")
		for _, m := range page.Messages {
			extra := m.Lease
			if m.Type != "started" {
				extra = strings.TrimSpace(string(m.Result) + " " + m.Error)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Cursor, m.At.Format(time.RFC3339Nano), m.Type, m.TaskID, m.Pool, extra)
		}
		_ = tw.Flush()
		fmt.Fprintf(e.stdout, "%d message(s); next cursor: %s\n", len(page.Messages), page.Next)
		return nil
	}
}

func auditFlags(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	from := fs.String("from", "", "RFC 3339 start of the range (default: to minus 24h)")
	to := fs.String("to", "", "RFC 3339 end of the range (default: now)")
	since := fs.Duration("since", 0, "shorthand for --from now-DURATION")
	pool := fs.String("pool", "", "only this pool")
	task := fs.String("task", "", "only this task")
	after := fs.String("after", "", "page `cursor` from a previous answer")
	limit := fs.Int("limit", 0, "at most this many events (default: the server's, 100)")
	return func(ctx context.Context, e *env, _ []string) error {
		q := client.AuditQuery{Pool: *pool, Task: *task, After: *after, Limit: *limit}
		var err error
		if q.From, err = parseTimeFlag("from", *from); err != nil {
			return err
		}
		if q.To, err = parseTimeFlag("to", *to); err != nil {
			return err
		}
		if *since > 0 {
			if *from != "" {
				return usagef("give --from or --since, not both")
			}
			q.From = time.Now().Add(-*since)
		}
		page, err := e.c.Audit(ctx, q)
		if err != nil {
			return err
		}
		if e.json {
			if page.Events == nil {
				page.Events = []api.Event{}
			}
			writeJSON(e.stdout, page)
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "AT\tPOOL\tTASK\tTYPE\tFROM\tTO\tDETAIL")
		for _, ev := range page.Events {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.At.Format(time.RFC3339Nano), ev.Pool, ev.TaskID, ev.Type, orDash(ev.From), ev.To, ev.Detail)
		}
		_ = tw.Flush()
		if page.Next != "" {
			fmt.Fprintf(e.stdout, "more: --after %s\n", page.Next)
		}
		return nil
	}
}

func poolsFlags(*flag.FlagSet) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		var pools []api.Pool
		if len(args) == 1 {
			p, err := e.c.Pool(ctx, args[0])
			if err != nil {
				return err
			}
			if e.json {
				writeJSON(e.stdout, p)
				return nil
			}
			pools = []api.Pool{p}
		} else {
			ps, err := e.c.Pools(ctx)
			if err != nil {
				return err
			}
			if e.json {
				if ps == nil {
					ps = []api.Pool{}
				}
				writeJSON(e.stdout, api.PoolList{Pools: ps})
				return nil
			}
			pools = ps
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "POOL\tRUNNING\tCAPACITY\tPARKED\tMAX PARKED\tEXECUTOR")
		for _, p := range pools {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", p.Name, p.Running, p.Capacity, p.Parked, p.MaxParked, p.Executor)
		}
		return tw.Flush()
	}
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, usagef("--%s: want an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
	}
	return t, nil
}

// showTask prints a task that status, complete or cancel got; with --json,
// the bare Task, as the API answers those routes.
func showTask(e *env, t *api.Task) error {
	if e.json {
		writeJSON(e.stdout, t)
		return nil
	}
	printTask(e.stdout, t)
	return nil
}

func printTask(w io.Writer, t *api.Task) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	ts := func(p *time.Time) string {
		if p == nil {
			return ""
		}
		return p.Format(time.RFC3339Nano)
	}
	row("task", t.ID)
	row("state", t.State)
	row("pool", t.Pool)
	row("tenant", t.Tenant)
	row("recipient", t.Recipient)
	row("key", t.Key)
	row("submitted", t.SubmittedAt.Format(time.RFC3339Nano))
	row("deadline", t.Deadline.Format(time.RFC3339Nano))
	row("started", ts(t.StartedAt))
	row("lease", t.Lease)
	row("lease expires", ts(t.LeaseExpiresAt))
	row("ended", ts(t.EndedAt))
	if len(t.Payload) > 0 {
		row("payload", string(t.Payload))
	}
	if len(t.Result) > 0 {
		row("result", string(t.Result))
	}
	row("error", t.Error)
	_ = tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
