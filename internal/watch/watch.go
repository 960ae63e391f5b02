// Package watch is the mailbox watchers of the memory and the embedded
// backends (core.MailboxWatcher): channels that a long poll waits on and
// that a store signals when a mailbox has new messages.
//
// A signal is a hint, not a message: each channel has room for one, and a
// signal sent while one is pending is dropped, so that a store never blocks
// on a slow or gone watcher. A watcher reads the mailbox again after each.
package watch

import "sync"

// chans is a set of watchers' channels.
type chans map[chan struct{}]struct{}

// signal wakes every channel in cs without blocking.
func (cs chans) signal() {
	for ch := range cs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// List is the watchers of one mailbox. The zero value is an empty list; a
// List must not be copied after first use.
type List struct {
	mu sync.Mutex
	cs chans
}

// Watch returns a channel signalled by every Notify after it, and the
// function that stops the signals.
func (l *List) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	if l.cs == nil {
		l.cs = make(chans)
	}
	l.cs[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.cs, ch)
		l.mu.Unlock()
	}
}

// Notify signals every watcher.
func (l *List) Notify() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cs.signal()
}

// Set is the watchers of many mailboxes, by key; a key is dropped with its
// last watcher. The zero value is an empty set; a Set must not be copied
// after first use.
type Set struct {
	mu sync.Mutex
	m  map[string]chans
}

// Watch returns a channel signalled by every Notify of key after it, and
// the function that stops the signals.
func (s *Set) Watch(key string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]chans)
	}
	cs := s.m[key]
	if cs == nil {
		cs = make(chans)
		s.m[key] = cs
	}
	cs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.m[key], ch)
		if len(s.m[key]) == 0 {
			delete(s.m, key)
		}
		s.mu.Unlock()
	}
}

// Notify signals the watchers of every key in keys.
func (s *Set) Notify(keys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.m[k].signal()
	}
}
