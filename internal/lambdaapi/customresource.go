package lambdaapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/cfn"

	"github.com/parkinglot/parkinglot/internal/poolapply"
)

// The custom resource through which a stack applies its pools to the
// table, served by expire (CustomResource).
const (
	// PoolsResourceType is its CloudFormation type.
	PoolsResourceType = "Custom::ParkinglotPools"
	// PropPools is its property holding the pools: a JSON array of
	// PoolSpec (CloudFormation passes every custom resource property as a
	// string, so the pools travel as one JSON string).
	PropPools = "Pools"
	// PropTable is its property naming the table. expire writes to its own
	// table; the property makes a replaced table an Update of the
	// resource, which applies the pools to the new table.
	PropTable = "Table"
)

// customResourceMargin is the time CustomResource keeps before the
// invocation's deadline to answer CloudFormation, whatever applying the
// pools has come to: an unanswered request holds the stack for an hour.
const customResourceMargin = 5 * time.Second

// CustomResource serves a CloudFormation custom resource request of type
// PoolsResourceType (AWS CloudFormation User Guide, "Custom resource
// request objects"): {"RequestType": "Create" | "Update" | "Delete",
// "ResponseURL": a pre-signed S3 URL, "StackId", "RequestId",
// "ResourceType", "LogicalResourceId", "PhysicalResourceId" (Update and
// Delete), "ResourceProperties": {"ServiceToken", "Pools", "Table"},
// "OldResourceProperties" (Update)}.
//
// Create and Update apply the pools of ResourceProperties.Pools to the
// table (poolapply.Apply: created, updated, or left alone when unchanged;
// counters kept; a change of slotShards while the pool's tasks run is
// refused). A pool dropped from the properties keeps its item: its tasks
// may still be running or parked. Delete leaves the table alone: it is
// retained with the stack's deletion. The answer is a PUT of a JSON
// response object to ResponseURL (with no Content-Type, as the pre-signed
// URL was signed without one): {"Status": "SUCCESS" | "FAILED", "Reason",
// "PhysicalResourceId", "StackId", "RequestId", "LogicalResourceId",
// "Data": {"Created", "Updated", "Unchanged"}}, the counts of pools. A
// failure to apply is a FAILED answer, which rolls the stack back; the
// returned error is only that of the answer itself, so that Lambda's
// retries of the asynchronous invocation answer again.
func (h *Handler) CustomResource(ctx context.Context, ev cfn.Event) error {
	res := cfn.Response{
		Status: cfn.StatusSuccess, RequestID: ev.RequestID, LogicalResourceID: ev.LogicalResourceID,
		StackID: ev.StackID, PhysicalResourceID: ev.PhysicalResourceID,
	}
	if res.PhysicalResourceID == "" {
		res.PhysicalResourceID = ev.LogicalResourceID
	}
	err := h.applyPools(ctx, ev, &res)
	if err != nil {
		res.Status, res.Reason = cfn.StatusFailed, clip(err.Error())
		res.Data = nil
	}
	h.log.InfoContext(ctx, "custom resource", "requestType", ev.RequestType, "logicalResourceId", ev.LogicalResourceID,
		"status", res.Status, "data", res.Data, "err", err)
	return h.answer(context.WithoutCancel(ctx), ev.ResponseURL, res)
}

// applyPools does ev's work and sets res's Data.
func (h *Handler) applyPools(ctx context.Context, ev cfn.Event, res *cfn.Response) error {
	switch {
	case ev.RequestType == cfn.RequestDelete:
		// Whatever the resource: failing a Delete would hold the stack's
		// deletion.
		return nil
	case ev.ResourceType != PoolsResourceType:
		return fmt.Errorf("resource type %q is not %s", ev.ResourceType, PoolsResourceType)
	case ev.RequestType != cfn.RequestCreate && ev.RequestType != cfn.RequestUpdate:
		return fmt.Errorf("request type %q is not Create, Update or Delete", ev.RequestType)
	case h.cfg.PoolStore == nil:
		return errors.New("this function has no pool store to apply pools to")
	}
	for k := range ev.ResourceProperties {
		if !slices.Contains([]string{"ServiceToken", PropPools, PropTable}, k) {
			return fmt.Errorf("unknown property %q (want %s, %s)", k, PropPools, PropTable)
		}
	}
	raw, ok := ev.ResourceProperties[PropPools].(string)
	if !ok {
		return fmt.Errorf("property %s must be a JSON string of pools", PropPools)
	}
	pools, err := ParsePools(raw)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-customResourceMargin))
		defer cancel()
	}
	r, err := poolapply.Apply(ctx, h.cfg.PoolStore, pools)
	if err != nil {
		return fmt.Errorf("applied %d pools, then: %w", len(r.Created)+len(r.Updated)+len(r.Unchanged), err)
	}
	res.Data = map[string]any{"Created": len(r.Created), "Updated": len(r.Updated), "Unchanged": len(r.Unchanged)}
	return nil
}

// answer PUTs res to CloudFormation's pre-signed url.
func (h *Handler) answer(ctx context.Context, url string, res cfn.Response) error {
	body, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("lambdaapi: %s: custom resource answer: %w", h.fn, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("lambdaapi: %s: custom resource answer: %w", h.fn, err)
	}
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("lambdaapi: %s: custom resource answer: %w", h.fn, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("lambdaapi: %s: custom resource answer: %s: %s", h.fn, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
