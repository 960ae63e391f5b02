package awsstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// maxQueueName is SQS's limit on a queue name, ".fifo" included.
const maxQueueName = 80

// QueueName returns the name of pool's parking queue: prefix + pool +
// ".fifo". SQS allows only [A-Za-z0-9_-] before the suffix and 80
// characters in all, so a pool name with a '.' has each '.' replaced by '_'
// and a hash of the name appended, and one that would be too long is cut
// and given the hash too.
func QueueName(prefix, pool string) string {
	name := pool
	if strings.Contains(name, ".") || len(prefix)+len(name)+len(".fifo") > maxQueueName {
		sum := sha256.Sum256([]byte(pool))
		hash := "-" + hex.EncodeToString(sum[:4])
		name = strings.ReplaceAll(name, ".", "_")
		if room := maxQueueName - len(prefix) - len(".fifo") - len(hash); len(name) > room {
			name = name[:room]
		}
		name += hash
	}
	return prefix + name + ".fifo"
}

func validQueueChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// DefaultGroupBuckets is the default of Options.GroupBuckets: the message
// groups each tenant's parked messages are spread over.
const DefaultGroupBuckets = 4

// tenantGroup is the part of a message group naming a tenant: the tenant
// itself when SQS accepts it (printable ASCII characters, 128 in all with
// the suffix of suffixLen characters that follows), else a hash of it.
func tenantGroup(tenant string, suffixLen int) string {
	ok := tenant != "" && len(tenant)+suffixLen <= 128
	for i := 0; ok && i < len(tenant); i++ {
		ok = tenant[i] >= 0x21 && tenant[i] <= 0x7e
	}
	if ok {
		return tenant
	}
	sum := sha256.Sum256([]byte(tenant))
	return "h-" + hex.EncodeToString(sum[:16])
}

// groupID is the message group of task id of tenant with the tenant spread
// over buckets groups: the tenant's part alone with one bucket, else that
// part, '#' and a bucket chosen by a hash of the task id. The bucket is
// digits after the last '#', so groups of different tenants never collide. A task always
// maps to the same group, so its re-sends share its first message's group
// (SQS's high-throughput mode may scope deduplication to a group).
func groupID(tenant, id string, buckets int) string {
	if buckets <= 1 {
		return tenantGroup(tenant, 0)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	suffix := "#" + strconv.Itoa(int(h.Sum32()%uint32(buckets)))
	return tenantGroup(tenant, len(suffix)) + suffix
}

// dedupID is the deduplication id of p's message: the task id for a first
// send or the outbox's re-send, so that SQS drops a re-send of a message it
// took within 5 minutes; for a reconcile's re-send (p.Resend set), the task
// id, "#r" and the minute of Resend, so that SQS does not drop it as a
// repeat of the first send (whose message was lost, but whose id SQS keeps
// for 5 minutes even after a purge or a delete), while the re-sends of
// concurrent reconciles in one minute are one message.
func dedupID(p core.Parked) string {
	if p.Resend.IsZero() {
		return p.TaskID
	}
	return p.TaskID + "#r" + strconv.FormatInt(p.Resend.Unix()/60, 10)
}

// parkedBody is the JSON body of a parking message.
type parkedBody struct {
	TaskID   string    `json:"taskId"`
	Tenant   string    `json:"tenant"`
	Deadline time.Time `json:"deadline"`
	// Task is core.Parked.Task, the fields of the task item (the payload
	// in base64), when the body stays within maxCarriedBody.
	Task *taskItem `json:"task,omitempty"`
}

// maxCarriedBody bounds a message body that carries its task: SQS bills
// a request per 64 KiB of payload, so a larger task travels without its
// copy and the receiver reads it.
const maxCarriedBody = 64 << 10

// parkedBodyOf is the body of p's message.
func parkedBodyOf(p core.Parked) ([]byte, error) {
	b := parkedBody{TaskID: p.TaskID, Tenant: p.Tenant, Deadline: p.Deadline}
	if p.Task != nil && p.Task.ID == p.TaskID {
		it := itemOf(p.Task, p.Task.Version)
		b.Task = &it
		if body, err := json.Marshal(b); err != nil || len(body) <= maxCarriedBody {
			return body, err
		}
		b.Task = nil
	}
	return json.Marshal(b)
}

// queueURL returns pool's queue URL, looked up once per process.
func (s *Store) queueURL(ctx context.Context, pool string) (string, error) {
	if u, ok := s.queues.Load(pool); ok {
		return u.(string), nil
	}
	out, err := s.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(QueueName(s.opts.QueuePrefix, pool))})
	if err != nil {
		var nq *sqstypes.QueueDoesNotExist
		if errors.As(err, &nq) && s.opts.CreateQueues {
			if err := s.createQueue(ctx, pool); err != nil {
				return "", err
			}
			return s.queueURL(ctx, pool)
		}
		return "", fmt.Errorf("awsstore: queue of pool %s: %w", pool, err)
	}
	u := aws.ToString(out.QueueUrl)
	s.queues.Store(pool, u)
	return u, nil
}

// createQueue creates pool's FIFO queue if missing. Messages are kept 14
// days, SQS's maximum and core's MaxWaitLimit.
func (s *Store) createQueue(ctx context.Context, pool string) error {
	out, err := s.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(QueueName(s.opts.QueuePrefix, pool)),
		Attributes: map[string]string{
			string(sqstypes.QueueAttributeNameFifoQueue):              "true",
			string(sqstypes.QueueAttributeNameVisibilityTimeout):      fmt.Sprint(int(s.opts.Visibility / time.Second)),
			string(sqstypes.QueueAttributeNameMessageRetentionPeriod): fmt.Sprint(14 * 24 * 3600),
		},
	})
	if err != nil {
		return fmt.Errorf("awsstore: create queue of pool %s: %w", pool, err)
	}
	s.queues.Store(pool, aws.ToString(out.QueueUrl))
	return nil
}

// Send enqueues p in its pool's FIFO queue: message group = tenant and
// bucket (groupID), deduplication id = dedupID (a send with the id of one
// sent within SQS's 5-minute window is dropped by SQS).
func (s *Store) Send(ctx context.Context, pool string, p core.Parked) error {
	u, err := s.queueURL(ctx, pool)
	if err != nil {
		return err
	}
	body, err := parkedBodyOf(p)
	if err != nil {
		return fmt.Errorf("awsstore: send %s: %w", p.TaskID, err)
	}
	_, err = s.sqs.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:               aws.String(u),
		MessageBody:            aws.String(string(body)),
		MessageGroupId:         aws.String(groupID(p.Tenant, p.TaskID, s.opts.GroupBuckets)),
		MessageDeduplicationId: aws.String(dedupID(p)),
	})
	if err != nil {
		return fmt.Errorf("awsstore: send %s to pool %s: %w", p.TaskID, pool, err)
	}
	return nil
}

// Receive returns up to n (at most 10) parked messages, each hidden for
// Options.Visibility, fairly between tenants: it receives a batch of up to
// 10 messages, and while a batch comes back full another one (at most
// receiveRounds), picks n of them tenant by tenant, the tenant this Store served
// least recently first (FIFO within a tenant), and makes the others visible
// again at once with one ChangeMessageVisibilityBatch call. A message whose
// body is not a parking message is deleted: it would block its group.
func (s *Store) Receive(ctx context.Context, pool string, n int) ([]core.Delivery, error) {
	return s.receive(ctx, pool, n, s.opts.ReceiveWait)
}

// ReceiveWait is Receive with an SQS long poll of wait (whole seconds, at
// most 20s) in its first receive: core.QueueLongPoller, for a claim that
// waits for work.
func (s *Store) ReceiveWait(ctx context.Context, pool string, n int, wait time.Duration) ([]core.Delivery, error) {
	return s.receive(ctx, pool, n, min(max(wait, 0), 20*time.Second))
}

var _ core.QueueLongPoller = (*Store)(nil)

func (s *Store) receive(ctx context.Context, pool string, n int, wait time.Duration) ([]core.Delivery, error) {
	u, err := s.queueURL(ctx, pool)
	if err != nil {
		return nil, err
	}
	if err := s.expireInflight(ctx, pool, u); err != nil {
		return nil, err
	}
	// While this call holds a batch, the batch's message groups are blocked
	// (FIFO), so a further receive returns other tenants' messages (or the
	// same tenant's other buckets): a deep backlog of one tenant does not
	// hide the others from pickFair.
	var msgs []sqstypes.Message
	for round := 0; round < receiveRounds; round++ {
		out, err := s.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(u),
			MaxNumberOfMessages: 10,
			VisibilityTimeout:   int32(s.opts.Visibility / time.Second),
			WaitTimeSeconds:     int32(wait / time.Second),
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{
				sqstypes.MessageSystemAttributeNameMessageGroupId,
			},
		})
		if err != nil {
			err = fmt.Errorf("awsstore: receive from pool %s: %w", pool, err)
			if rerr := s.releaseMessages(ctx, pool, u, msgs); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return nil, err
		}
		msgs = append(msgs, out.Messages...)
		if len(out.Messages) < 10 || !oneTenant(msgs, s.opts.GroupBuckets) {
			break
		}
		wait = 0 // what a further round finds is there already
	}
	ds := make([]core.Delivery, 0, len(msgs))
	for _, m := range msgs {
		var b parkedBody
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &b); err != nil || b.TaskID == "" {
			if err := s.Delete(ctx, pool, aws.ToString(m.ReceiptHandle)); err != nil {
				return nil, err
			}
			continue
		}
		d := core.Delivery{
			Parked:  core.Parked{TaskID: b.TaskID, Tenant: b.Tenant, Deadline: b.Deadline.UTC()},
			Receipt: aws.ToString(m.ReceiptHandle),
		}
		if b.Task != nil && b.Task.ID == b.TaskID {
			t := b.Task.task()
			d.Task = &t
		}
		ds = append(ds, d)
	}
	picked, rest := s.pickFair(pool, ds, min(10, max(1, n)))
	if err := s.releaseAll(ctx, pool, u, rest); err != nil {
		// The picked messages are still handed back, not left hidden.
		return nil, errors.Join(err, s.releaseAll(ctx, pool, u, picked))
	}
	until := s.opts.Clock.Now().Add(s.opts.Visibility)
	for _, d := range picked {
		s.track(pool, d.Receipt, d.Tenant, until)
	}
	return picked, nil
}

// receiveRounds bounds the ReceiveMessage calls of one Receive.
const receiveRounds = 3

// oneTenant reports whether msgs all belong to one tenant's message groups
// (of buckets each), so that other tenants may be waiting behind them.
func oneTenant(msgs []sqstypes.Message, buckets int) bool {
	first := groupTenant(msgs[0], buckets)
	for _, m := range msgs[1:] {
		if groupTenant(m, buckets) != first {
			return false
		}
	}
	return true
}

// groupTenant returns the tenant part of m's message group, of groupID
// with buckets.
func groupTenant(m sqstypes.Message, buckets int) string {
	g := m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]
	if i := strings.LastIndexByte(g, '#'); buckets > 1 && i >= 0 {
		return g[:i]
	}
	return g
}

func (s *Store) releaseMessages(ctx context.Context, pool, u string, msgs []sqstypes.Message) error {
	ds := make([]core.Delivery, len(msgs))
	for i, m := range msgs {
		ds[i].Receipt = aws.ToString(m.ReceiptHandle)
	}
	return s.releaseAll(ctx, pool, u, ds)
}

// pickFair picks up to n deliveries, one tenant at a time: the tenant
// served (deleted) least recently by this Store first, ties in the order of
// ds; within a tenant in the order of ds.
func (s *Store) pickFair(pool string, ds []core.Delivery, n int) (picked, rest []core.Delivery) {
	if len(ds) <= 1 && n >= 1 {
		return ds, nil
	}
	var tenants []string
	byTenant := map[string][]core.Delivery{}
	for _, d := range ds {
		if _, ok := byTenant[d.Tenant]; !ok {
			tenants = append(tenants, d.Tenant)
		}
		byTenant[d.Tenant] = append(byTenant[d.Tenant], d)
	}
	s.mu.Lock()
	last := make(map[string]uint64, len(tenants))
	for _, t := range tenants {
		last[t] = s.served[pool][t]
	}
	s.mu.Unlock()
	turn := s.servedSerial()
	for len(picked) < n {
		best := ""
		for _, t := range tenants {
			if len(byTenant[t]) > 0 && (best == "" || last[t] < last[best]) {
				best = t
			}
		}
		if best == "" {
			break
		}
		picked = append(picked, byTenant[best][0])
		byTenant[best] = byTenant[best][1:]
		turn++
		last[best] = turn
	}
	for _, t := range tenants {
		rest = append(rest, byTenant[t]...)
	}
	return picked, rest
}

func (s *Store) servedSerial() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serial
}

// releaseAll makes ds visible again at once, 10 per call.
func (s *Store) releaseAll(ctx context.Context, pool, u string, ds []core.Delivery) error {
	for len(ds) > 0 {
		k := min(len(ds), 10)
		entries := make([]sqstypes.ChangeMessageVisibilityBatchRequestEntry, k)
		for i, d := range ds[:k] {
			entries[i] = sqstypes.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(fmt.Sprint(i)), ReceiptHandle: aws.String(d.Receipt), VisibilityTimeout: 0,
			}
		}
		batch := ds[:k]
		ds = ds[k:]
		out, err := s.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(u), Entries: entries})
		if staleReceipt(err) {
			// One stale receipt (its visibility ended and the message went
			// elsewhere) fails the whole call on some implementations:
			// hand the others back one by one, stale ones ignored.
			for _, d := range batch {
				if err := s.release(ctx, pool, u, d.Receipt); err != nil {
					return err
				}
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("awsstore: hand back messages of pool %s: %w", pool, err)
		}
		for _, f := range out.Failed {
			if f.SenderFault && !staleCode(aws.ToString(f.Code)) {
				return fmt.Errorf("awsstore: hand back messages of pool %s: %s: %s", pool, aws.ToString(f.Code), aws.ToString(f.Message))
			}
		}
	}
	return nil
}

// Delete removes a received message. A receipt that is no longer valid is
// ignored, as the message is visible again and will be dropped on
// redelivery.
func (s *Store) Delete(ctx context.Context, pool, receipt string) error {
	u, err := s.queueURL(ctx, pool)
	if err != nil {
		return err
	}
	s.untrack(pool, receipt, true)
	_, err = s.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(u), ReceiptHandle: aws.String(receipt)})
	if err != nil && !staleReceipt(err) {
		return fmt.Errorf("awsstore: delete from pool %s: %w", pool, err)
	}
	return nil
}

// Release makes a received message visible again at once (visibility 0).
func (s *Store) Release(ctx context.Context, pool, receipt string) error {
	u, err := s.queueURL(ctx, pool)
	if err != nil {
		return err
	}
	s.untrack(pool, receipt, false)
	return s.release(ctx, pool, u, receipt)
}

func (s *Store) release(ctx context.Context, pool, u, receipt string) error {
	_, err := s.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(u), ReceiptHandle: aws.String(receipt), VisibilityTimeout: 0,
	})
	if err != nil && !staleReceipt(err) {
		return fmt.Errorf("awsstore: release in pool %s: %w", pool, err)
	}
	return nil
}

// staleReceipt reports an error about a receipt whose message is no longer
// in flight: it is visible again (or gone) either way.
func staleReceipt(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	return staleCode(ae.ErrorCode())
}

// staleCode reports whether an SQS error code means the receipt handle is
// no longer valid.
func staleCode(code string) bool {
	switch code {
	case "ReceiptHandleIsInvalid", "InvalidReceiptHandle", "MessageNotInflight",
		"AWS.SimpleQueueService.MessageNotInflight", "InvalidParameterValue":
		return true
	}
	return false
}

func (s *Store) track(pool, receipt, tenant string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.inflight[pool]
	if m == nil {
		m = make(map[string]inflight)
		s.inflight[pool] = m
	}
	m[receipt] = inflight{until: until, tenant: tenant}
}

// untrack forgets a receipt; served records its tenant as served now.
func (s *Store) untrack(pool, receipt string, served bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.inflight[pool][receipt]
	delete(s.inflight[pool], receipt)
	if !ok || !served {
		return
	}
	m := s.served[pool]
	if m == nil || len(m) >= servedMax {
		m = make(map[string]uint64)
		s.served[pool] = m
	}
	s.serial++
	m[f.tenant] = s.serial
}

// inflight is a message this Store received and has not handled yet.
type inflight struct {
	until  time.Time // visible again then, on Options.Clock
	tenant string
}

// servedMax bounds the tenants remembered per pool for fairness.
const servedMax = 10000

// expireInflight makes visible again the messages of pool that this Store
// received and whose visibility has ended on Options.Clock.
func (s *Store) expireInflight(ctx context.Context, pool, u string) error {
	now := s.opts.Clock.Now()
	var due []string
	s.mu.Lock()
	for r, f := range s.inflight[pool] {
		if !now.Before(f.until) {
			due = append(due, r)
			delete(s.inflight[pool], r)
		}
	}
	s.mu.Unlock()
	for _, r := range due {
		if err := s.release(ctx, pool, u, r); err != nil {
			return err
		}
	}
	return nil
}
