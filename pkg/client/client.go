package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parkinglot/parkinglot/pkg/api"
)

// DefaultServer is the server's default address.
const DefaultServer = "http://127.0.0.1:8080"

// Client calls one server as one tenant. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests through hc.
// Default: a client without a timeout (requests are bounded by their ctx).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// New returns a client of the server at baseURL (such as
// http://127.0.0.1:8080) that authenticates with the bearer token, if any.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("client: server URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q: want http://host:port or https://host", baseURL)
	}
	c := &Client{base: u, token: token, http: &http.Client{}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Error is a failed call: an error response of the API, or a response that
// was not one (Code empty).
type Error struct {
	Status  int    // HTTP status
	Code    string // API error code, such as pool_full or lease_lost
	Field   string // the bad input, if any
	Message string
	// RetryAfter is the server's Retry-After on 429, if any.
	RetryAfter time.Duration
	// Task is the rejected task on 429 pool_full.
	Task *api.Task
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Field != "" {
		b.WriteString(" (" + e.Field + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Is makes errors.Is(err, &Error{Code: c}) match by code, and
// errors.Is(err, &Error{Status: s}) by status.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return (t.Code == "" || t.Code == e.Code) && (t.Status == 0 || t.Status == e.Status)
}

// Code returns the API error code of err, or "" if err is not an *Error.
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// StatusOf returns the HTTP status of err, or 0 if err is not an *Error.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// SubmitResult is a submission's answer.
type SubmitResult struct {
	Task api.Task
	// Replayed is true when the key named an earlier submission with the
	// same body (200 instead of 201).
	Replayed bool
}

// Submit submits a task to pool. A full pool is a *Error with Code
// pool_full, Status 429 and the rejected Task.
func (c *Client) Submit(ctx context.Context, pool string, req api.SubmitRequest) (SubmitResult, error) {
	var body api.TaskBody
	status, err := c.do(ctx, http.MethodPost, "/v1/pools/"+url.PathEscape(pool)+"/tasks", nil, req, &body)
	if err != nil {
		return SubmitResult{}, err
	}
	return SubmitResult{Task: body.Task, Replayed: status == http.StatusOK}, nil
}

// Task returns a task.
func (c *Client) Task(ctx context.Context, id string) (api.Task, error) {
	var t api.Task
	_, err := c.do(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id), nil, nil, &t)
	return t, err
}

// Heartbeat extends a running task's lease; extend zero means the task's
// run timeout. It returns the new lease end.
func (c *Client) Heartbeat(ctx context.Context, id, lease string, extend time.Duration) (time.Time, error) {
	req := api.HeartbeatRequest{Lease: lease}
	if extend > 0 {
		req.Extend = extend.String()
	}
	var resp api.HeartbeatResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/tasks/"+url.PathEscape(id)+"/heartbeat", nil, req, &resp)
	return resp.LeaseExpiresAt, err
}

// Complete records a running task's outcome (status succeeded or failed).
func (c *Client) Complete(ctx context.Context, id string, req api.CompleteRequest) (api.Task, error) {
	var t api.Task
	_, err := c.do(ctx, http.MethodPost, "/v1/tasks/"+url.PathEscape(id)+"/complete", nil, req, &t)
	return t, err
}

// CompleteNext records a running task's outcome, as a worker of a pull
// pool, and asks for up to max (1-10) next tasks in the same call: the
// freed slot goes to the pool's next parked task, started for the worker.
// It returns the ended task and the started ones, none when nothing was
// waiting.
func (c *Client) CompleteNext(ctx context.Context, id string, req api.CompleteRequest, max int) (api.Task, []api.Task, error) {
	req.Next = &api.NextRequest{Max: max}
	var resp api.CompleteNextResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/tasks/"+url.PathEscape(id)+"/complete", nil, req, &resp)
	return resp.Task, resp.Next, err
}

// ClaimOptions shape a claim.
type ClaimOptions struct {
	Max  int           // tasks at most, 1-10; zero: 1
	Wait time.Duration // wait up to this long for a task (at most 20s)
}

// Claim starts up to o.Max parked tasks of a pull pool for the calling
// worker and returns them running, each with its lease and payload; none
// when o.Wait ran out.
func (c *Client) Claim(ctx context.Context, pool string, o ClaimOptions) ([]api.Task, error) {
	req := api.ClaimRequest{Max: o.Max}
	if o.Wait > 0 {
		req.Wait = o.Wait.String()
	}
	var resp api.ClaimResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/pools/"+url.PathEscape(pool)+"/claim", nil, req, &resp)
	return resp.Tasks, err
}

// WaitTask returns a task once it is no longer parked, waiting up to wait
// (at most 20s) for it to start or end; a task still parked when the wait
// ends is returned as it is.
func (c *Client) WaitTask(ctx context.Context, id string, wait time.Duration) (api.Task, error) {
	q := url.Values{}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var t api.Task
	_, err := c.do(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id), q, nil, &t)
	return t, err
}

// Cancel cancels a parked or running task.
func (c *Client) Cancel(ctx context.Context, id string) (api.Task, error) {
	var t api.Task
	_, err := c.do(ctx, http.MethodPost, "/v1/tasks/"+url.PathEscape(id)+"/cancel", nil, struct{}{}, &t)
	return t, err
}

// MailboxOptions page through a mailbox.
type MailboxOptions struct {
	After string        // cursor: messages after it
	Limit int           // zero: the server's default
	Wait  time.Duration // long poll up to this long (at most 20s)
}

// Mailbox returns a page of the recipient's unacknowledged messages.
func (c *Client) Mailbox(ctx context.Context, recipient string, o MailboxOptions) (api.MailboxPage, error) {
	q := url.Values{}
	if o.After != "" {
		q.Set("after", o.After)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Wait > 0 {
		q.Set("wait", o.Wait.String())
	}
	var page api.MailboxPage
	_, err := c.do(ctx, http.MethodGet, "/v1/mailbox/"+url.PathEscape(recipient), q, nil, &page)
	return page, err
}

// Ack acknowledges the recipient's messages up to and including upTo.
func (c *Client) Ack(ctx context.Context, recipient, upTo string) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/mailbox/"+url.PathEscape(recipient)+"/ack", nil, api.AckRequest{UpTo: upTo}, nil)
	return err
}

// AuditQuery selects audit events; zero fields are left to the server
// (the last 24 hours, every pool and task, the default page size).
type AuditQuery struct {
	From, To time.Time
	Pool     string
	Task     string
	After    string
	Limit    int
}

// Audit returns a page of the caller's audit events.
func (c *Client) Audit(ctx context.Context, aq AuditQuery) (api.AuditPage, error) {
	q := url.Values{}
	if !aq.From.IsZero() {
		q.Set("from", aq.From.UTC().Format(time.RFC3339Nano))
	}
	if !aq.To.IsZero() {
		q.Set("to", aq.To.UTC().Format(time.RFC3339Nano))
	}
	if aq.Pool != "" {
		q.Set("pool", aq.Pool)
	}
	if aq.Task != "" {
		q.Set("task", aq.Task)
	}
	if aq.After != "" {
		q.Set("after", aq.After)
	}
	if aq.Limit > 0 {
		q.Set("limit", strconv.Itoa(aq.Limit))
	}
	var page api.AuditPage
	_, err := c.do(ctx, http.MethodGet, "/v1/audit", q, nil, &page)
	return page, err
}

// Pools returns every pool's configuration and counters.
func (c *Client) Pools(ctx context.Context) ([]api.Pool, error) {
	var list api.PoolList
	_, err := c.do(ctx, http.MethodGet, "/v1/pools", nil, nil, &list)
	return list.Pools, err
}

// Pool returns one pool.
func (c *Client) Pool(ctx context.Context, name string) (api.Pool, error) {
	var p api.Pool
	_, err := c.do(ctx, http.MethodGet, "/v1/pools/"+url.PathEscape(name), nil, nil, &p)
	return p, err
}

// maxResponse bounds a response body (a mailbox page of 1,000 messages
// with results of 128 KiB each is far below it).
const maxResponse = 512 << 20

func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) (int, error) {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	if p, err := url.PathUnescape(u.Path); err == nil && p != u.Path {
		u.RawPath = c.base.Path + path
		u.Path = p
	}
	u.RawQuery = q.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("client: encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return 0, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("client: %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, decodeError(resp, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("client: %s %s: decode %d response: %w", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

func decodeError(resp *http.Response, b []byte) error {
	e := &Error{Status: resp.StatusCode}
	var body api.Error
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code, e.Field, e.Message, e.Task = body.Error.Code, body.Error.Field, body.Error.Message, body.Task
	} else {
		msg := strings.TrimSpace(string(b))
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		e.Message = msg
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil && s >= 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
	}
	return e
}

// CloseIdleConnections closes the underlying HTTP client's idle connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }
