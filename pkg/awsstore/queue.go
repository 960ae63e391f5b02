package awsstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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

// groupID is the message group of a tenant: the tenant itself when SQS
// accepts it (1-128 printable ASCII characters), else a hash of it.
func groupID(tenant string) string {
	ok := tenant != "" && len(tenant) <= 128
	for i := 0; ok && i < len(tenant); i++ {
		ok = tenant[i] >= 0x21 && tenant[i] <= 0x7e
	}
	if ok {
		return tenant
	}
	sum := sha256.Sum256([]byte(tenant))
	return "h-" + hex.EncodeToString(sum[:16])
}

// parkedBody is the JSON body of a parking message.
type parkedBody struct {
	TaskID   string    `json:"taskId"`
	Tenant   string    `json:"tenant"`
	Deadline time.Time `json:"deadline"`
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

// Send enqueues p in its pool's FIFO queue: message group = tenant,
// deduplication id = task id (a re-send within SQS's 5-minute window is
// dropped by SQS).
func (s *Store) Send(ctx context.Context, pool string, p core.Parked) error {
	u, err := s.queueURL(ctx, pool)
	if err != nil {
		return err
	}
	body, err := json.Marshal(parkedBody{TaskID: p.TaskID, Tenant: p.Tenant, Deadline: p.Deadline})
	if err != nil {
		return fmt.Errorf("awsstore: send %s: %w", p.TaskID, err)
	}
	_, err = s.sqs.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:               aws.String(u),
		MessageBody:            aws.String(string(body)),
		MessageGroupId:         aws.String(groupID(p.Tenant)),
		MessageDeduplicationId: aws.String(p.TaskID),
	})
	if err != nil {
		return fmt.Errorf("awsstore: send %s to pool %s: %w", p.TaskID, pool, err)
	}
	return nil
}

// Receive returns up to max (at most 10) parked messages, each hidden for
// Options.Visibility. A message whose body is not a parking message is
// deleted: it would otherwise block its message group.
func (s *Store) Receive(ctx context.Context, pool string, n int) ([]core.Delivery, error) {
	u, err := s.queueURL(ctx, pool)
	if err != nil {
		return nil, err
	}
	out, err := s.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(u),
		MaxNumberOfMessages: int32(min(10, max(1, n))),
		VisibilityTimeout:   int32(s.opts.Visibility / time.Second),
		WaitTimeSeconds:     int32(s.opts.ReceiveWait / time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("awsstore: receive from pool %s: %w", pool, err)
	}
	ds := make([]core.Delivery, 0, len(out.Messages))
	for _, m := range out.Messages {
		var b parkedBody
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &b); err != nil || b.TaskID == "" {
			if err := s.Delete(ctx, pool, aws.ToString(m.ReceiptHandle)); err != nil {
				return nil, err
			}
			continue
		}
		ds = append(ds, core.Delivery{
			Parked:  core.Parked{TaskID: b.TaskID, Tenant: b.Tenant, Deadline: b.Deadline.UTC()},
			Receipt: aws.ToString(m.ReceiptHandle),
		})
	}
	return ds, nil
}

// Delete removes a received message. A receipt that is no longer valid is
// ignored, as the message is visible again and will be dropped on
// redelivery.
func (s *Store) Delete(ctx context.Context, pool, receipt string) error {
	u, err := s.queueURL(ctx, pool)
	if err != nil {
		return err
	}
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
	_, err = s.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
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
	switch ae.ErrorCode() {
	case "ReceiptHandleIsInvalid", "InvalidReceiptHandle", "MessageNotInflight",
		"AWS.SimpleQueueService.MessageNotInflight", "InvalidParameterValue":
		return true
	}
	return false
}
