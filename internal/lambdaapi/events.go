package lambdaapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// Event-driven submission failures.
var (
	// ErrNoTenant: the submission names no tenant its source may speak for.
	ErrNoTenant = errors.New("no tenant for the submission")
	// ErrNoPool: the submission names no pool.
	ErrNoPool = errors.New("no pool for the submission")
	// ErrRefused: the submission was refused by the API (4xx other than
	// 429); retrying it cannot succeed.
	ErrRefused = errors.New("submission refused")
	// ErrSubmitFailed: the submission failed in a way a retry may mend (5xx).
	ErrSubmitFailed = errors.New("submission failed")
)

// SubmitEvent is the detail of an EventBridge submission: the pool and the
// body of POST /v1/pools/{pool}/tasks.
type SubmitEvent struct {
	Pool    string          `json:"pool"`
	Request json.RawMessage `json:"request"`
}

// SQS serves a batch of SQS submissions and reports the messages that failed,
// for the event source mapping's ReportBatchItemFailures: Lambda deletes the
// others and makes the failed ones visible again, until the queue's redrive
// policy moves them to the dead-letter queue. On a FIFO queue, every message
// after the first failure is reported too, so that a message group's order
// holds.
func (h *Handler) SQS(ctx context.Context, ev events.SQSEvent) events.SQSEventResponse {
	var res events.SQSEventResponse
	failed := false
	for _, m := range ev.Records {
		fifo := strings.HasSuffix(m.EventSourceARN, ".fifo")
		if failed && fifo {
			res.BatchItemFailures = append(res.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
			continue
		}
		err := h.submitSQS(ctx, m)
		if err != nil {
			h.log.WarnContext(ctx, "SQS submission failed", "messageId", m.MessageId, "err", err)
			res.BatchItemFailures = append(res.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
			failed = true
		}
	}
	h.mets.Emit([]string{"Function", "Source"}, map[string]string{"Function": string(h.fn), "Source": "sqs"},
		Metric{Name: "EventSubmissions", Unit: Count, Value: float64(len(ev.Records))},
		Metric{Name: "EventSubmissionFailures", Unit: Count, Value: float64(len(res.BatchItemFailures))})
	return res
}

func (h *Handler) submitSQS(ctx context.Context, m events.SQSMessage) error {
	tenant := attribute(m, h.cfg.TenantAttribute)
	if tenant == "" {
		return fmt.Errorf("message %s: %w: message attribute %q is missing", m.MessageId, ErrNoTenant, h.cfg.TenantAttribute)
	}
	pool := attribute(m, h.cfg.PoolAttribute)
	if pool == "" {
		return fmt.Errorf("message %s: %w: message attribute %q is missing", m.MessageId, ErrNoPool, h.cfg.PoolAttribute)
	}
	return h.submitEvent(ctx, tenant, pool, []byte(m.Body), "sqs:"+m.MessageId)
}

func attribute(m events.SQSMessage, name string) string {
	a, ok := m.MessageAttributes[name]
	if !ok || a.StringValue == nil || !strings.HasPrefix(a.DataType, "String") {
		return ""
	}
	return *a.StringValue
}

// EventBridge serves one EventBridge submission. The tenant is the one
// SourceTenants maps the event's source to (EventBridge refuses sources
// starting "aws." from callers, and PutEvents on the bus is granted to the
// source's producers only). An error makes Lambda retry the asynchronous
// invocation and then hand the event to the function's dead-letter queue or
// on-failure destination.
func (h *Handler) EventBridge(ctx context.Context, ev events.EventBridgeEvent) error {
	err := h.submitEventBridge(ctx, ev)
	failures := 0.0
	if err != nil {
		failures = 1
	}
	h.mets.Emit([]string{"Function", "Source"}, map[string]string{"Function": string(h.fn), "Source": "eventbridge"},
		Metric{Name: "EventSubmissions", Unit: Count, Value: 1},
		Metric{Name: "EventSubmissionFailures", Unit: Count, Value: failures})
	return err
}

func (h *Handler) submitEventBridge(ctx context.Context, ev events.EventBridgeEvent) error {
	tenant := h.cfg.SourceTenants[ev.Source]
	if tenant == "" {
		return fmt.Errorf("lambdaapi: event %s: %w: source %q is not mapped to a tenant", ev.ID, ErrNoTenant, ev.Source)
	}
	var d SubmitEvent
	dec := json.NewDecoder(bytes.NewReader(ev.Detail))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return fmt.Errorf("lambdaapi: event %s: %w: detail must be {\"pool\": ..., \"request\": {...}}: %v", ev.ID, ErrRefused, err)
	}
	if d.Pool == "" {
		return fmt.Errorf("lambdaapi: event %s: %w: detail.pool is missing", ev.ID, ErrNoPool)
	}
	if err := h.submitEvent(ctx, tenant, d.Pool, d.Request, "event:"+ev.ID); err != nil {
		return fmt.Errorf("lambdaapi: %w", err)
	}
	return nil
}

// submitEvent serves body as POST /v1/pools/{pool}/tasks by tenant, through
// the same handler as the HTTP route. A body without a key gets defaultKey,
// so that a redelivery replays the submission. 201, 200 (a replay) and 429
// (rejected: the outcome is in the mailbox) are done; other statuses fail.
func (h *Handler) submitEvent(ctx context.Context, tenant, pool string, body []byte, defaultKey string) error {
	body = withDefaultKey(body, defaultKey)
	ev := events.APIGatewayV2HTTPRequest{
		Version:  "2.0",
		RouteKey: "POST /v1/pools/{pool}/tasks",
		RawPath:  "/v1/pools/" + url.PathEscape(pool) + "/tasks",
		Headers:  map[string]string{"content-type": "application/json"},
		Body:     string(body),
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: defaultKey,
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: http.MethodPost, Path: "/v1/pools/" + url.PathEscape(pool) + "/tasks"},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{h.cfg.TenantClaim: tenant}},
			},
		},
	}
	res, err := h.HTTP(ctx, ev)
	if err != nil {
		return fmt.Errorf("submission %s: %w: %v", defaultKey, ErrSubmitFailed, err)
	}
	switch {
	case res.StatusCode == http.StatusCreated || res.StatusCode == http.StatusOK:
		return nil
	case res.StatusCode == http.StatusTooManyRequests:
		h.log.InfoContext(ctx, "event submission rejected: parked depth full; the outcome is in the mailbox", "submission", defaultKey, "pool", pool)
		return nil
	case res.StatusCode >= 500:
		return fmt.Errorf("submission %s: %w: %d %s", defaultKey, ErrSubmitFailed, res.StatusCode, res.Body)
	}
	return fmt.Errorf("submission %s: %w: %d %s", defaultKey, ErrRefused, res.StatusCode, strings.TrimSpace(res.Body))
}

// withDefaultKey adds "key": key to a JSON object body that has none,
// leaving the rest of its bytes as they are. Any other body is returned as
// it is, for the API to judge.
func withDefaultKey(body []byte, key string) []byte {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		trimmed = []byte("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &obj); err != nil || obj == nil {
		return body
	}
	if _, ok := obj["key"]; ok {
		return body
	}
	k, _ := json.Marshal(key)
	rest := bytes.TrimSpace(trimmed[1:])
	out := append([]byte(`{"key":`), k...)
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}
