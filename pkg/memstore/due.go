package memstore

import (
	"container/heap"
	"hash/maphash"
	"slices"
	"sync"
	"time"
)

// dueIndex is the sweeper's index of non-terminal tasks by due time, like a
// sparse global secondary index. It is sharded so that writers of different
// tasks rarely meet on one lock; each shard is a heap with lazy deletion,
// holding the current due time of each task it indexes.
type dueIndex struct {
	seed   maphash.Seed
	shards [16]dueShard
}

type dueShard struct {
	mu  sync.Mutex
	h   dueHeap
	cur map[string]time.Time
}

type dueEntry struct {
	at time.Time
	id string
}

type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func (x *dueIndex) init() {
	x.seed = maphash.MakeSeed()
	for i := range x.shards {
		x.shards[i].cur = make(map[string]time.Time)
	}
}

// move re-indexes id from due time old to due time now (zero: not indexed).
// Callers hold the task's item lock, so moves of one task are ordered.
func (x *dueIndex) move(id string, old, now time.Time) {
	if old.Equal(now) {
		return
	}
	sh := &x.shards[maphash.String(x.seed, id)%uint64(len(x.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now.IsZero() {
		delete(sh.cur, id)
		return
	}
	sh.cur[id] = now
	heap.Push(&sh.h, dueEntry{at: now, id: id})
}

// before returns up to limit ids due at or before t, soonest first.
func (x *dueIndex) before(t time.Time, limit int) []string {
	var all []dueEntry
	for i := range x.shards {
		sh := &x.shards[i]
		sh.mu.Lock()
		var keep []dueEntry
		seen := map[string]bool{}
		for sh.h.Len() > 0 && !sh.h[0].at.After(t) && len(keep) < limit {
			e := heap.Pop(&sh.h).(dueEntry)
			if cur, ok := sh.cur[e.id]; !ok || !cur.Equal(e.at) || seen[e.id] {
				// Stale (the task moved on), or a duplicate left by a
				// task that came back to an earlier due time.
				continue
			}
			seen[e.id] = true
			keep = append(keep, e)
		}
		for _, e := range keep {
			heap.Push(&sh.h, e)
		}
		sh.mu.Unlock()
		all = append(all, keep...)
	}
	slices.SortFunc(all, func(a, b dueEntry) int { return a.at.Compare(b.at) })
	if len(all) > limit {
		all = all[:limit]
	}
	ids := make([]string, len(all))
	for i, e := range all {
		ids[i] = e.id
	}
	return ids
}
