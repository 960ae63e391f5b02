package pebblestore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// CheckReport is what Check read and found in a data directory.
type CheckReport struct {
	Path string
	// Clean reports whether the last process to open the store closed it
	// (CleanFile is there). If not, the next Open replays the write-ahead
	// log and logs what it recovered; Check reads the replayed state.
	Clean  bool
	Format uint64
	Seq    uint64 // the last sequence number committed
	Tables int    // table files, their sizes checked against the manifest
	Points int64  // entries Pebble's level check read, older versions included

	Pools     int
	Tasks     map[core.State]int
	Keys      int // idempotency keys
	Queued    int // parking-queue messages
	Mailboxes int // mailboxes that ever had a message
	Messages  int // mailbox messages
	Acks      int // acknowledged cursors
	Events    int // audit events

	// Findings are the problems found, one human-readable line each,
	// naming the key, pool, task or mailbox.
	Findings []string
}

// OK reports whether Check found nothing wrong.
func (r *CheckReport) OK() bool { return len(r.Findings) == 0 }

// TaskCount returns the number of tasks in every state.
func (r *CheckReport) TaskCount() int {
	n := 0
	for _, c := range r.Tasks {
		n += c
	}
	return n
}

// Check verifies the store in directory path offline, without changing it.
// It takes the directory's locks, so a directory a running server has open
// is refused ("in use by another process"), and opens Pebble read-only.
//
// It reads every key of every key space, so every value's CRC-32C and
// every block's Pebble checksum is verified, runs Pebble's level check,
// and checks the store's invariants: each pool's running and parked
// counters equal the number of its tasks in those states; every parked task
// has a parking-queue message or is flagged Unsent; the Due and Unsent
// indexes match the tasks; idempotency keys name existing tasks; each
// mailbox's messages have strictly increasing cursors that match their keys,
// its newest record is at least its last message's cursor and its
// acknowledged cursor is not beyond the newest; every message has its
// retention log entry and every log entry its message; no cursor or
// sequence number is beyond the store's.
//
// Problems of the data are findings in the report; an error means Check
// could not read the store at all (no store there, in use, a permission,
// damage that stops Pebble from opening it).
func Check(path string, opts Options) (CheckReport, error) {
	rep := CheckReport{Path: path, Tasks: make(map[core.State]int)}
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return rep, err
	}
	// Check creates nothing: a directory without the store's files is not
	// made into one (Open would).
	_, lerr := opts.FS.Stat(opts.FS.PathJoin(path, LockFile))
	_, merr := opts.FS.Stat(opts.FS.PathJoin(path, MarkerFile))
	if lerr != nil && merr != nil {
		if errors.Is(lerr, fs.ErrNotExist) && errors.Is(merr, fs.ErrNotExist) {
			return rep, fmt.Errorf("pebblestore: check %s: no store in this directory", path)
		}
		return rep, fmt.Errorf("pebblestore: check %s: %w", path, lerr)
	}
	lock, err := lockDir(opts.FS, path)
	if err != nil {
		return rep, err
	}
	defer lock.Close()
	_, cerr := opts.FS.Stat(opts.FS.PathJoin(path, CleanFile))
	rep.Clean = cerr == nil
	db, plock, err := openPebble(path, opts, true)
	if err != nil {
		return rep, err
	}
	c := &checker{db: db, path: path, opts: opts, rep: &rep}
	err = c.run()
	if cerr := closePebble(db); err == nil && cerr != nil {
		err = fmt.Errorf("pebblestore: check %s: close: %w", path, cerr)
	}
	_ = plock.Close()
	return rep, err
}

// closePebble closes db; see Store.closeDB.
func closePebble(db *pebble.DB) (err error) {
	defer guard(&err, "close")
	return db.Close()
}

type checker struct {
	db   *pebble.DB
	path string
	opts Options
	rep  *CheckReport

	seq      uint64
	seqKnown bool
	pools    map[string]*poolCount // decoded pool items
	badPools map[string]bool       // pool items that do not decode
	queued   map[string]map[string]bool
	// Tasks whose value does not decode, or whose scan did not finish:
	// the pools' counters cannot be verified.
	tasksUnread int
	tasksDone   bool
	readErrs    map[string]bool // see readFailed
}

type poolCount struct {
	pool            core.Pool
	running, parked int
}

// find adds a finding, on one line: Pebble's errors carry details on
// lines of their own.
func (c *checker) find(format string, args ...any) {
	var parts []string
	for _, l := range strings.Split(fmt.Sprintf(format, args...), "\n") {
		if l = strings.TrimSpace(l); l != "" && !(strings.HasPrefix(l, "<") && strings.HasSuffix(l, ">")) {
			parts = append(parts, l)
		}
	}
	c.rep.Findings = append(c.rep.Findings, strings.Join(parts, "; "))
}

// readFailed notes a failed read of a cross-check (one item's reference to
// another), after which that reference is not checked. Damage (ErrCorrupt)
// is reported by the scan of its key space or by Pebble's level check;
// another failure is reported once per distinct error.
func (c *checker) readFailed(err error) {
	if errors.Is(err, ErrCorrupt) {
		return
	}
	if c.readErrs == nil {
		c.readErrs = make(map[string]bool)
	}
	if msg := err.Error(); !c.readErrs[msg] {
		c.readErrs[msg] = true
		c.find("read failed: %v", err)
	}
}

// bad describes a value that does not decode.
func bad(err error) string {
	return "bad value: " + strings.ReplaceAll(err.Error(), "pebblestore: ", "")
}

// each calls fn for every entry of space. A failed read of Pebble's (a
// block checksum, a missing table) ends the scan with a finding; each
// reports whether the scan got through.
func (c *checker) each(space byte, what string, fn func(k, v []byte)) bool {
	err := scan(c.db, []byte{space}, nil, func(k, v []byte) (bool, error) {
		fn(k, v)
		return true, nil
	})
	if err != nil {
		c.find("%s: read failed, the rest not checked: %v", what, err)
		return false
	}
	return true
}

// beyond reports whether sequence number n was never handed out.
func (c *checker) beyond(n uint64) bool { return c.seqKnown && n > c.seq }

func (c *checker) run() (err error) {
	defer guard(&err, "check "+c.path)
	if !c.meta() {
		return nil
	}
	if tables, err := c.db.SSTables(); err == nil {
		for _, level := range tables {
			c.rep.Tables += len(level)
		}
	}
	if err := checkTables(c.db, c.opts.FS, c.path); err != nil {
		c.find("tables: %v", err)
	}
	var stats pebble.CheckLevelsStats
	if err := c.db.CheckLevels(&stats); err != nil {
		c.find("pebble: level check failed: %v", err)
	}
	c.rep.Points = stats.NumPoints

	c.checkPools()
	c.checkQueues()
	c.checkTasks()
	c.checkCounters()
	c.checkDue()
	c.checkUnsent()
	c.checkKeys()
	c.checkMessages()
	c.checkMessageLog()
	c.checkNewest()
	c.checkAcks()
	c.checkEvents()
	c.checkUnknown()
	return nil
}

// meta reads the format version and the sequence number; without a
// format version there is nothing more to check.
func (c *checker) meta() bool {
	v, ok, err := get(c.db, keyFormat)
	switch {
	case err != nil:
		c.find("meta: format version: read failed: %v", err)
		return false
	case !ok:
		c.find("meta: no format version: the store's data is gone (damaged or missing MANIFEST or WAL)")
		return false
	case len(v) != 8:
		c.find("meta: malformed format version %x", v)
		return false
	}
	c.rep.Format = readU64(v)
	if c.rep.Format != formatVersion {
		c.find("meta: format version %d, this build reads %d: nothing else checked", c.rep.Format, formatVersion)
		return false
	}
	v, ok, err = get(c.db, keySeq)
	switch {
	case err != nil:
		c.find("meta: sequence number: read failed: %v", err)
	case !ok:
		c.seqKnown = true // nothing was ever committed with a sequence number
	case len(v) != 8:
		c.find("meta: malformed sequence number %x", v)
	default:
		c.seq, c.seqKnown = readU64(v), true
		c.rep.Seq = c.seq
	}
	return true
}

func (c *checker) checkPools() {
	c.pools = make(map[string]*poolCount)
	c.badPools = make(map[string]bool)
	c.each(spacePools, "pools", func(k, v []byte) {
		name := string(k[1:])
		c.rep.Pools++
		var p core.Pool
		if err := decode(v, &p); err != nil {
			c.find("pool %q: %s", name, bad(err))
			c.badPools[name] = true
			return
		}
		if p.Name != name {
			c.find("pool %q: its value names pool %q", name, p.Name)
		}
		if p.Running < 0 || p.Parked < 0 {
			c.find("pool %q: negative counter (running %d, parked %d)", name, p.Running, p.Parked)
		}
		c.pools[name] = &poolCount{pool: p}
	})
}

func (c *checker) checkQueues() {
	c.queued = make(map[string]map[string]bool)
	c.each(spaceQueue, "parking queues", func(k, v []byte) {
		pool, rest, err := readStr(k[1:])
		if err != nil || len(rest) != 8 {
			c.find("queue: malformed key %x", k)
			return
		}
		seq := readU64(rest)
		c.rep.Queued++
		var p core.Parked
		if err := decode(v, &p); err != nil {
			c.find("queue of pool %q, message %d: %s", pool, seq, bad(err))
			return
		}
		if c.beyond(seq) {
			c.find("queue of pool %q, message %d (task %q): sequence number beyond the store's %d", pool, seq, p.TaskID, c.seq)
		}
		q := c.queued[string(pool)]
		if q == nil {
			q = make(map[string]bool)
			c.queued[string(pool)] = q
		}
		q[p.TaskID] = true
	})
}

func (c *checker) checkTasks() {
	c.tasksDone = c.each(spaceTasks, "tasks", func(k, v []byte) {
		id := string(k[1:])
		var t core.Task
		if err := decode(v, &t); err != nil {
			c.find("task %q: %s", id, bad(err))
			c.tasksUnread++
			return
		}
		c.rep.Tasks[t.State]++
		if t.ID != id {
			c.find("task %q: its value names task %q", id, t.ID)
		}
		switch t.State {
		case core.StateParked, core.StateRunning, core.StateSucceeded, core.StateFailed, core.StateExpired,
			core.StateRejected, core.StateCancelled, core.StateTimedOut:
		default:
			c.find("task %q: unknown state %q", id, t.State)
		}
		if !t.State.Terminal() {
			if p := c.pools[t.Pool]; p != nil {
				if t.State == core.StateRunning {
					p.running++
				} else {
					p.parked++
				}
			} else if !c.badPools[t.Pool] {
				c.find("task %q: %s in pool %q, which does not exist", id, t.State, t.Pool)
			}
		}
		if t.State == core.StateParked && !t.Unsent && !c.queued[t.Pool][id] {
			c.find("task %q: parked in pool %q without a parking-queue message, and not flagged Unsent", id, t.Pool)
		}
		if due := t.DueAt(); !due.IsZero() {
			_, ok, err := get(c.db, dueKey(due, id))
			switch {
			case err != nil:
				c.readFailed(err)
			case !ok:
				c.find("task %q: %s, due at %s, has no due index entry", id, t.State, due.UTC().Format(time.RFC3339Nano))
			}
		}
		_, ok, err := get(c.db, unsentKey(id))
		switch {
		case err != nil:
			c.readFailed(err)
		case t.Unsent && !ok:
			c.find("task %q: flagged Unsent without an unsent index entry", id)
		case !t.Unsent && ok:
			c.find("task %q: an unsent index entry, but the task is not flagged Unsent", id)
		}
	})
}

// checkCounters compares each pool's counters with its tasks.
func (c *checker) checkCounters() {
	switch {
	case len(c.pools) == 0:
		return
	case !c.tasksDone:
		c.find("pools: counters not verified: the tasks could not all be read")
		return
	case c.tasksUnread > 0:
		c.find("pools: counters not verified: %d task values could not be read", c.tasksUnread)
		return
	}
	for _, name := range slices.Sorted(maps.Keys(c.pools)) {
		p := c.pools[name]
		if p.pool.Running != p.running {
			c.find("pool %q: running counter %d, tasks running in it %d", name, p.pool.Running, p.running)
		}
		if p.pool.Parked != p.parked {
			c.find("pool %q: parked counter %d, tasks parked in it %d", name, p.pool.Parked, p.parked)
		}
	}
}

// task reads task id for a cross-check; a value that does not decode is
// reported where the tasks are scanned.
func (c *checker) task(id string) (core.Task, bool, error) {
	var t core.Task
	ok, err := getValue(c.db, taskKey(id), &t)
	return t, ok, err
}

func (c *checker) checkDue() {
	c.each(spaceDue, "due index", func(k, _ []byte) {
		if len(k) < 9 {
			c.find("due index: malformed key %x", k)
			return
		}
		id, at := string(k[9:]), readTime(k[1:9])
		t, ok, err := c.task(id)
		switch {
		case err != nil:
			c.readFailed(err)
		case !ok:
			c.find("due index entry of task %q at %s: the task does not exist", id, at.Format(time.RFC3339Nano))
		case t.State.Terminal():
			c.find("due index entry of task %q at %s: the task is %s", id, at.Format(time.RFC3339Nano), t.State)
		case !bytes.Equal(k[1:9], appendTime(nil, t.DueAt())):
			c.find("due index entry of task %q at %s: the task is due at %s", id, at.Format(time.RFC3339Nano), t.DueAt().UTC().Format(time.RFC3339Nano))
		}
	})
}

func (c *checker) checkUnsent() {
	c.each(spaceUnsent, "unsent index", func(k, _ []byte) {
		id := string(k[1:])
		t, ok, err := c.task(id)
		switch {
		case err != nil:
			c.readFailed(err)
		case !ok:
			c.find("unsent index entry of task %q: the task does not exist", id)
		case !t.Unsent:
			c.find("unsent index entry of task %q: the task is not flagged Unsent", id) // also found from the task
		}
	})
}

func (c *checker) checkKeys() {
	c.each(spaceKeys, "idempotency keys", func(k, v []byte) {
		tenant, rest, err := readStr(k[1:])
		if err != nil {
			c.find("idempotency keys: malformed key %x", k)
			return
		}
		c.rep.Keys++
		var rec core.KeyRecord
		if err := decode(v, &rec); err != nil {
			c.find("idempotency key %q of tenant %q: %s", rest, tenant, bad(err))
			return
		}
		if rec.Tenant != string(tenant) || rec.Key != string(rest) {
			c.find("idempotency key %q of tenant %q: its value names key %q of tenant %q", rest, tenant, rec.Key, rec.Tenant)
		}
		_, ok, err := c.task(rec.TaskID)
		switch {
		case err != nil:
			c.readFailed(err)
		case !ok:
			c.find("idempotency key %q of tenant %q: task %q does not exist", rest, tenant, rec.TaskID)
		}
	})
}

// mailboxName renders a mailbox key (str(tenant) str(recipient)).
func mailboxName(box []byte) string {
	tenant, rest, err := readStr(box)
	if err != nil {
		return fmt.Sprintf("%x", box)
	}
	recipient, rest, err := readStr(rest)
	if err != nil || len(rest) != 0 {
		return fmt.Sprintf("%x", box)
	}
	return fmt.Sprintf("%q/%q", tenant, recipient)
}

// splitMailbox splits a key's mailbox (str(tenant) str(recipient)) from
// the rest.
func splitMailbox(b []byte) (tenant, recipient, rest []byte, err error) {
	tenant, rest, err = readStr(b)
	if err == nil {
		recipient, rest, err = readStr(rest)
	}
	return tenant, recipient, rest, err
}

func (c *checker) checkMessages() {
	var box []byte // the mailbox being scanned
	var last core.Cursor
	var lastKey uint64
	endBox := func() {
		if box == nil {
			return
		}
		name := mailboxName(box)
		v, ok, err := get(c.db, newestKey(box))
		switch {
		case err != nil:
			c.readFailed(err)
		case !ok:
			c.find("mailbox %s: messages up to cursor %d, but no newest record", name, lastKey)
		case len(v) != 8:
			c.find("mailbox %s: malformed newest record %x", name, v)
		case readU64(v) < lastKey:
			c.find("mailbox %s: newest record %d is behind its last message's cursor %d", name, readU64(v), lastKey)
		}
	}
	c.each(spaceMbox, "mailbox messages", func(k, v []byte) {
		tenant, recipient, rest, err := splitMailbox(k[1:])
		if err != nil || len(rest) != 8 {
			c.find("mailbox messages: malformed key %x", k)
			return
		}
		b := k[1 : len(k)-8]
		if !bytes.Equal(b, box) {
			endBox()
			box, last = bytes.Clone(b), 0
		}
		name := mailboxName(box)
		cursor := readU64(rest)
		lastKey = cursor
		c.rep.Messages++
		if c.beyond(cursor) {
			c.find("mailbox %s, message %d: cursor beyond the store's sequence number %d", name, cursor, c.seq)
		}
		lv, ok, err := get(c.db, appendU64(key(spaceMlog, 8), cursor))
		switch {
		case err != nil:
			c.readFailed(err)
		case !ok:
			c.find("mailbox %s, message %d: no log entry (retention would never remove it)", name, cursor)
		case len(lv) < 8 || !bytes.Equal(lv[8:], box):
			c.find("mailbox %s, message %d: its log entry names mailbox %s", name, cursor, mailboxName(lv[min(8, len(lv)):]))
		}
		var m core.Message
		if err := decode(v, &m); err != nil {
			c.find("mailbox %s, message %d: %s", name, cursor, bad(err))
			return
		}
		if uint64(m.Cursor) != cursor {
			c.find("mailbox %s, message %d: its value has cursor %d", name, cursor, m.Cursor)
		}
		if m.Tenant != string(tenant) || m.Recipient != string(recipient) {
			c.find("mailbox %s, message %d: its value is for mailbox %q/%q", name, cursor, m.Tenant, m.Recipient)
		}
		if m.Cursor <= last {
			c.find("mailbox %s, message %d: cursor %d does not increase (after %d)", name, cursor, m.Cursor, last)
		}
		last = m.Cursor
	})
	endBox()
}

// checkMessageLog checks that each retention log entry names a message.
func (c *checker) checkMessageLog() {
	c.each(spaceMlog, "message log", func(k, v []byte) {
		if len(k) != 9 || len(v) < 8 {
			c.find("message log: malformed entry %x: %x", k, v)
			return
		}
		cursor := readU64(k[1:])
		_, ok, err := get(c.db, messageKey(v[8:], core.Cursor(cursor)))
		switch {
		case err != nil:
			c.readFailed(err)
		case !ok:
			c.find("message log entry %d: mailbox %s has no message %d", cursor, mailboxName(v[8:]), cursor)
		}
	})
}

func (c *checker) checkNewest() {
	c.each(spaceNewest, "newest records", func(k, v []byte) {
		name := mailboxName(k[1:])
		c.rep.Mailboxes++
		if len(v) != 8 {
			c.find("mailbox %s: malformed newest record %x", name, v)
			return
		}
		if n := readU64(v); c.beyond(n) {
			c.find("mailbox %s: newest record %d is beyond the store's sequence number %d", name, n, c.seq)
		}
	})
}

func (c *checker) checkAcks() {
	c.each(spaceAcks, "acknowledged cursors", func(k, v []byte) {
		box := k[1:]
		name := mailboxName(box)
		c.rep.Acks++
		if len(v) != 8 {
			c.find("mailbox %s: malformed acknowledged cursor %x", name, v)
			return
		}
		ack := readU64(v)
		nv, ok, err := get(c.db, newestKey(box))
		switch {
		case err != nil:
			c.readFailed(err)
		case !ok:
			c.find("mailbox %s: acknowledged cursor %d, but no newest record", name, ack)
		case len(nv) != 8:
			// reported by checkNewest
		case ack > readU64(nv):
			c.find("mailbox %s: acknowledged cursor %d is beyond the newest %d", name, ack, readU64(nv))
		}
	})
}

func (c *checker) checkEvents() {
	c.each(spaceAudit, "audit events", func(k, v []byte) {
		tenant, rest, err := readStr(k[1:])
		if err != nil || len(rest) != 16 {
			c.find("audit: malformed key %x", k)
			return
		}
		seq := readU64(rest[8:])
		c.rep.Events++
		var e core.Event
		if err := decode(v, &e); err != nil {
			c.find("audit event %d of tenant %q: %s", seq, tenant, bad(err))
			return
		}
		if e.Tenant != string(tenant) || e.Seq != seq || !bytes.Equal(rest[:8], appendTime(nil, e.At)) {
			c.find("audit event %d of tenant %q at %s: its value is event %d of tenant %q at %s",
				seq, tenant, readTime(rest).Format(time.RFC3339Nano), e.Seq, e.Tenant, e.At.UTC().Format(time.RFC3339Nano))
		}
		if c.beyond(seq) {
			c.find("audit event %d of tenant %q: sequence number beyond the store's %d", seq, tenant, c.seq)
		}
	})
}

// spaces are the key spaces, in key order.
var spaces = []byte{spaceAcks, spaceMbox, spaceDue, spaceAudit, spaceKeys, spaceMlog, spaceMeta, spaceNewest, spacePools, spaceQueue, spaceTasks, spaceUnsent}

// checkUnknown reports keys outside the key spaces and unknown meta keys.
func (c *checker) checkUnknown() {
	c.each(spaceMeta, "meta", func(k, _ []byte) {
		if !bytes.Equal(k, keyFormat) && !bytes.Equal(k, keySeq) {
			c.find("meta: unknown key %q", k)
		}
	})
	// The gaps between the spaces: before the first, between two, after
	// the last.
	var lower []byte
	for i := 0; i <= len(spaces); i++ {
		var upper []byte
		if i < len(spaces) {
			upper = []byte{spaces[i]}
		}
		if !bytes.Equal(lower, upper) {
			if err := c.unknownIn(lower, upper); err != nil {
				c.find("keys outside the key spaces: read failed: %v", err)
			}
		}
		if i < len(spaces) {
			lower = []byte{spaces[i] + 1}
		}
	}
}

func (c *checker) unknownIn(lower, upper []byte) (err error) {
	defer guard(&err, "scan")
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return corrupt(err)
	}
	defer func() {
		if cerr := it.Close(); err == nil && cerr != nil {
			err = corrupt(cerr)
		}
	}()
	for ok := it.First(); ok; ok = it.Next() {
		c.find("unknown key %q outside the store's key spaces", it.Key())
	}
	return nil
}
