package push

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
	"time"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// Headers of a push to an HTTP target, besides api.SignatureHeader.
const (
	// HeaderTaskID and HeaderAttempt repeat the body's id and attempt.
	HeaderTaskID  = "Parkinglot-Task-Id"
	HeaderAttempt = "Parkinglot-Attempt"
	// HeaderIdempotencyKey is the task's id, the key a target deduplicates
	// repeated deliveries by.
	HeaderIdempotencyKey = "Idempotency-Key"
)

// maxAnswerBytes bounds the answer of a sync target read: an outcome
// holds at most core.MaxResultBytes of result and its error.
const maxAnswerBytes = core.MaxResultBytes + 16<<10

func checkURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return fmt.Errorf("is required for an http target")
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("must be an absolute http or https URL, got %q", s)
	}
	return nil
}

// httpSender POSTs a start to an HTTP target.
type httpSender struct{ client *http.Client }

func (h httpSender) send(ctx context.Context, tg *Target, t *core.Task, body []byte) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.URL, bytes.NewReader(body))
	if err != nil {
		return result{err: err, permanent: true}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderTaskID, t.ID)
	req.Header.Set(HeaderIdempotencyKey, t.ID)
	req.Header.Set(HeaderAttempt, strconv.Itoa(t.PushAttempts+1))
	if tg.Secret != "" {
		req.Header.Set(api.SignatureHeader, api.Sign([]byte(tg.Secret), time.Now(), body))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, query included
		}
		return result{err: fmt.Errorf("POST %s: %w", redact(tg.URL), err)}
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return result{err: fmt.Errorf("POST %s: reading the answer: %w", redact(tg.URL), err)}
	}
	if c := resp.StatusCode; c < 200 || c > 299 {
		return result{err: fmt.Errorf("POST %s: %s: %s", redact(tg.URL), resp.Status, excerpt(answer)), permanent: !retryableStatus(c)}
	}
	if tg.Mode == ModeAsync {
		return result{accepted: true}
	}
	if len(answer) > maxAnswerBytes {
		return result{err: fmt.Errorf("POST %s: the answer exceeds %d bytes", redact(tg.URL), maxAnswerBytes), permanent: true}
	}
	var o api.PushOutcome
	if len(bytes.TrimSpace(answer)) > 0 {
		if err := json.Unmarshal(answer, &o); err != nil {
			return result{err: fmt.Errorf("POST %s: the answer is not an outcome (JSON {status, result, error}): %v", redact(tg.URL), err), permanent: true}
		}
	}
	return result{outcome: &o}
}

// retryableStatus reports whether an HTTP status may pass: a timeout, a
// throttle, a server's failure, or a 409 (a target that deduplicates by
// the Idempotency-Key answers it while an earlier delivery of the task is
// still running). Any other 4xx (and 3xx) is for good.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return code >= 500
}

// redact is a target URL as errors show it, which tasks' tenants and the
// logs see: scheme, host and path, without credentials or query.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the target"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// excerpt is the start of an answer, for an error.
func excerpt(b []byte) string {
	const n = 200
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
