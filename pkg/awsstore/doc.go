// Package awsstore is the DynamoDB + SQS backend of Parkinglot: core's ports
// over one DynamoDB table and one SQS FIFO queue per pool, with the
// semantics of pkg/memstore.
//
// # Table layout (single table, keys pk and sk, on-demand billing)
//
//	item            pk                          sk                      notes
//	pool            POOL#<pool>                 POOL                    capacity, maxParked, running, parked, slotShards, drain; pools_p = POOLS
//	slot shard      POOL#<pool>#<i>             SHARD                   capacity, running, hasParked, shards (pools with slotShards >= 2)
//	task            TASK#<id>                   TASK                    every task field and version; slot while it runs on a shard; due_p/due_at, unsent_p when indexed
//	idempotency key KEY#<tenant>#<key>          KEY                     taskId, bodyHash
//	mailbox         MBOX#<tenant>#<recipient>   HEAD                    seq (last cursor given), acked (acknowledged cursor)
//	message         MBOX#<tenant>#<recipient>   MSG#<cursor, 20 digits> exp_p/exp_at, TTL expires
//	pending message MBOX#<tenant>#<recipient>   PEND#<stamp, 20>#<nonce>#<n, 20>
//	                                                                    a message not numbered yet; exp_p/exp_at, TTL expires
//	audit event     AUDIT#<tenant>              EV#<At ns, 20>#<Seq, 20> exp_p/exp_at, TTL expires
//
// Tenant, key and recipient components have '%' and '#' escaped, so that
// keys of different components never collide. Global secondary indexes, all
// sparse and KEYS_ONLY:
//
//	index   partition key               sort key   holds
//	due     due_p = DUE#<shard>         due_at     non-terminal tasks by due time: deadline if parked, lease end if running
//	unsent  unsent_p = UNSENT#<shard>   pk         parked tasks whose queue message may be unsent (the outbox flag)
//	pools   pools_p = POOLS             pk         pool items (counter updates do not touch it: KEYS_ONLY)
//	expiry  exp_p = EXP#M|E#<shard>     exp_at     messages (M) and events (E) by creation time, for Purge
//
// A terminal task's put omits due_p and unsent_p, which removes it from
// those indexes. Shards (Options.IndexShards, hash of the item key) spread
// index writes over several index partitions; readers query every shard.
//
// # Access patterns
//
//	pattern                                   served by
//	Pool(name), admission conditions          GetItem / conditional Update of POOL#<pool>; a sharded pool: BatchGetItem
//	                                          of the pool and its N shards, conditional Updates of the shards
//	Pools()                                   Query pools index, then BatchGetItem (consistent) of the pool items
//	Task(id), Key(tenant, key)                GetItem, strongly consistent
//	Commit (every transition)                 one TransactWriteItems (below)
//	Due(t, limit)                             Query due index per shard, due_at <= t, merged by due time
//	Unsent(limit)                             Query unsent index per shard
//	Messages(tenant, recipient, after)        GetItem HEAD (acked, seq), then Query sk >= MSG#<max(after, acked)+1>: the
//	                                          numbered messages, then the pending ones; if any, one TransactWriteItems
//	                                          numbers them (below)
//	Ack(tenant, recipient, upTo)              Update HEAD SET acked conditioned on acked < upTo
//	Events(tenant, [from, to), pool?, task?)  Query AUDIT#<tenant> sk BETWEEN (from|after) AND to, FilterExpression on pool/task
//	Purge(before)                             Query expiry index per kind and shard, exp_at < before, BatchWriteItem deletes of 25
//	                                          (pending messages included)
//	parked work                               SQS FIFO queue per pool (QueueName), group = tenant + bucket, dedup id = task id
//	QueueShort(pool, parked)                  GetQueueAttributes (approximate message counts) of the pool's queue
//	NonTerminal(after, limit)                 Query due index, one shard at a time, from the cursor's key on
//
// # Commit
//
// A transition is one TransactWriteItems call: each task's put conditioned
// on its version (attribute_not_exists for a new task; and on its state
// when the write expects one, TaskWrite.ExpectState), the idempotency
// key's put conditioned on absence, the pool's counter update conditioned on
// running < capacity, or running <= capacity for a hand-off (NeedSlot), parked = 0 (FirstInLine) and
// parked < maxParked (NeedParkRoom), the messages' puts as pending items
// (conditioned on absence; no mailbox item is written) and the event puts. Cancellation reasons are translated into
// the core error of the first failing item, in that order: ErrConflict,
// ErrKeyExists, then ErrPoolNotFound, or ErrNoCapacity or ErrPoolFull
// decided by core's Txn.CheckPool from the pool item returned with the
// failure (ReturnValuesOnConditionCheckFailure ALL_OLD). A transaction that
// core's Txn.CheckShape refuses sends no request. Any other error leaves the outcome unknown and is
// returned as is; the SDK's retries of one call reuse its ClientRequestToken,
// so DynamoDB applies a retried transaction at most once.
//
// # Slot shards (hot pools)
//
// A pool with PoolConfig.SlotShards N >= 2 counts its running tasks on N
// shard items instead of the pool item, whose one item takes about 1,000
// write units per second (about 250 lifecycles per second at two
// transactional writes each). Shard i holds capacity_i (the capacity split
// as evenly as possible), running_i, and hasParked, 1 exactly while the pool
// item's parked > 0. A start increments a shard with running_i < capacity_i
// (those that had room when the Store last read the pool first, from a
// random one on; ErrNoCapacity once all N were full) and
// records it in the task item; a release decrements the shard its task
// records, and a hand-off gives that shard to the started task on
// running_i <= capacity_i. FirstInLine is checked as hasParked = 0 on the
// shard the transaction writes, so a pool with nothing parked has its starts
// and releases written to one shard each and its pool item not at all. The
// transactions that move parked from 0 or back to 0 write every shard's
// flag. Never more than capacity run: each start leaves its shard within its
// share, and the shares add up to the capacity. Lowering the capacity below
// the running count sets every share to 0 and the pool item's drain flag;
// the first start that finds every shard full once the pool runs fewer than
// its capacity splits it again. PutPool changes N only while no task runs
// (core.InvalidError on slotShards otherwise); every shard write is
// conditioned on the shard count and every pool-item write on slotShards, so
// a Store with a stale layout re-reads it. slots.go has the details.
//
// # Mailbox cursors
//
// A transition writes its messages as pending items, sort key
// PEND#<stamp>#<nonce>#<n>, and nothing else of the mailbox: its messages
// take no number, so concurrent transitions into one recipient's mailbox do
// not meet on one item. (They did: each transaction set the HEAD item's
// seq = n+k conditioned on seq = n; of 720 concurrent transitions into 2
// mailboxes on moto, 3,128 of the 3,848 transactions sent were cancelled.
// docs/benchmarks.md, "Mailbox contention", has the figures.)
//
// Readers number them. Messages reads HEAD (seq, acked) and queries the
// partition from MSG#<max(after, acked)+1> upward, strongly consistent:
// "MSG#" sorts before "PEND#", so the Query returns the numbered messages
// after the cursor, then the pending ones in stamp order. When pending
// messages come back and the page has room, one TransactWriteItems numbers
// up to 49 of them: HEAD's seq = n+k conditioned on seq = n, a put of each
// message under MSG#<n+i> (its attributes, the expiry ones included,
// copied) and the delete of its pending item, conditioned on its presence.
// Messages returns them with their cursors. A reader that loses that race
// (another reader numbered them first, or a transaction conflict) reads
// again, up to 4 times, then returns the numbered messages it read.
//
// The cursor contract holds because a cursor is given only by a
// transaction conditioned on HEAD's seq: a message committed after a reader
// saw cursor c is pending then, and a later transaction numbers it above c
// (never behind a cursor a reader passed, as a time-based key could be);
// numbered messages never move. Ack refuses a cursor beyond HEAD's seq
// (ErrAckBeyondNewest): a pending message has no cursor yet, and every
// cursor Messages returned is at most seq.
//
// Order: a pending message's stamp is the writing Store's clock in
// nanoseconds at the commit, strictly increasing within the Store, so one
// process's messages are numbered in its commit order, and different
// processes' messages pending at once by their clocks (as audit events
// are). A task's started message is stamped with its task's StartedAt, and
// the task's later message (its outcome) after StartedAt, so the started
// message comes first whatever the skew between the processes that wrote
// them; two messages of one transaction may so be numbered out of the
// transaction's order (a hand-off's release and start).
//
// The price moves to the readers: a poll reads HEAD and queries the
// partition (2 reads, where a poll that found nothing new used to read HEAD
// alone), and numbering copies each message once (a put and a delete: about
// 5 more write units per message, and one transaction per page that finds
// pending messages). HEAD is written by readers only: once per page, not
// once per transition.
//
// # Audit events
//
// An event's sort key is (At, Seq): Seq is the store's clock in nanoseconds
// at commit, made strictly increasing within a process, so that events of
// equal At are ordered by commit (across processes, by their clocks at
// commit); the put is conditioned on absence, and a collision between
// processes retries with the next number. One tenant's events share one
// partition: about 1,000 writes per second per tenant.
//
// A pool's events follow its commits (stamp.go): each pool item and slot
// shard a transaction writes keeps the last committed stamp and event
// number (lastAt, lastSeq), the write is conditioned on coming after them,
// and a transaction refused for that alone is stamped again by core's rule
// (core.Txn.StampAfter) and retried. That rule never moves a start to or
// past its task's deadline: Commit then returns core.ErrLateStart, having
// written nothing, and core expires the task instead of starting it.
//
// # Parking queue
//
// One SQS FIFO queue per pool, named Options.QueuePrefix + pool + ".fifo"
// (see QueueName for names SQS would refuse), deduplication id = task id.
// A message's body carries the task id, tenant and deadline and, when the
// body stays within 64 KiB (SQS bills each 64 KiB), the task's item as
// core.Parked.Task: a receiver starts the task without reading it, by a put
// conditioned on that version and on state = parked.
// SQS and DynamoDB share no transaction: core's outbox flag (Task.Unsent,
// the unsent index) and its sweeper close the gap.
//
// Each tenant's messages are spread over Options.GroupBuckets message groups
// (default DefaultGroupBuckets): the tenant, '#' and a bucket chosen by a
// hash of the task id. A FIFO message group is blocked while any of its
// messages is in flight, so with the group = tenant alone, one receiver at
// a time could hold a tenant's message: in a pool whose backlog belongs to
// few tenants, most concurrent releases found nothing to hand their slot to
// and fell back to a dispatch. With N buckets, up to N receivers hold one
// tenant's messages at once. The trade-offs:
//
//   - Order within a tenant is FIFO per bucket, not per tenant: a later task
//     of a tenant may start before an earlier one of another bucket (both
//     parked at once). The rules do not depend on the order: every start
//     checks its task's deadline and the pool's capacity, whichever message
//     comes first.
//   - Fairness between tenants holds because every tenant gets the same N
//     groups: SQS serves groups, so tenants with a backlog in every bucket
//     get equal shares, and a tenant with fewer parked tasks than buckets
//     gets fewer groups, never more. Receive's pick (below) is by tenant,
//     not by group, so a batch showing several tenants is served tenant by
//     tenant whatever their buckets.
//   - A task's bucket depends on its id alone, so its re-sends land in the
//     group of its first message.
//
// The queue can lose messages the table keeps (a purge, a queue created
// again, a message moved to the DLQ, a restored table). The Store is a
// core.QueueReconciler: QueueShort compares the queue's approximate message
// counts with the pool's parked count (one GetQueueAttributes), NonTerminal
// pages through the due index, and a reconcile's re-send (Parked.Resend)
// gets a deduplication id of its own per minute (dedupID), since SQS keeps
// a deduplication id for 5 minutes even after its message is gone.
//
// Receive takes a batch of up to 10 messages and, while batches come back
// full of one tenant's messages (of any of its buckets), up to two more: a
// held batch blocks its message groups, so the next batch shows other
// tenants' messages behind one tenant's backlog. It picks
// the messages asked for tenant by tenant, the tenant this Store served
// (deleted) least recently first, and hands the rest back at once with one
// ChangeMessageVisibilityBatch call. Delete removes a message, Release sets
// its visibility to 0. A received message is hidden for Options.Visibility
// by SQS's timer and also, for this Store, by Options.Clock: once its
// visibility has passed on the clock, the pool's next Receive makes it
// visible again first.
//
// While one receiver holds a message of a group, no receiver gets that
// group's next one, and a released message comes back only when its group
// holds nothing else. Dispatchers of one pool therefore start one bucket's
// parked tasks one batch at a time.
//
// # Retries and retention
//
// Build the SDK clients once, with NewRetryer: throttling and 5xx are
// retried with backoff, bounded by the caller's context. Messages and events
// carry a TTL attribute (expires) for retention; correctness never waits on
// TTL, and Purge deletes past-retention items itself.
//
// # Limits
//
// A task item holds its payload and result: both together must fit
// DynamoDB's 400 KB item limit, which core's bounds keep (a payload of at
// most 256 KiB, a result of at most 128 KiB; TestLargestTaskFitsOneItem).
package awsstore
