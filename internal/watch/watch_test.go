package watch

import "testing"

func signalled(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// watcher is what List and Set have in common, for one key.
type watcher struct {
	watch  func() (<-chan struct{}, func())
	notify func()
}

func kinds() map[string]func() (watcher, watcher) {
	return map[string]func() (watcher, watcher){
		"List": func() (watcher, watcher) {
			var a, b List
			return watcher{a.Watch, a.Notify}, watcher{b.Watch, b.Notify}
		},
		"Set": func() (watcher, watcher) {
			var s Set
			w := func(k string) watcher {
				return watcher{func() (<-chan struct{}, func()) { return s.Watch(k) }, func() { s.Notify([]string{k}) }}
			}
			return w("a"), w("b")
		},
	}
}

func TestSignal(t *testing.T) {
	for name, mk := range kinds() {
		t.Run(name, func(t *testing.T) {
			a, b := mk()
			ch1, stop1 := a.watch()
			defer stop1()
			ch2, stop2 := a.watch()
			defer stop2()
			other, stopOther := b.watch()
			defer stopOther()
			if signalled(ch1) {
				t.Fatal("signalled before any notify")
			}
			a.notify()
			if !signalled(ch1) || !signalled(ch2) {
				t.Fatal("a watcher was not signalled")
			}
			if signalled(other) {
				t.Fatal("another key's watcher was signalled")
			}
			// Signals do not pile up, and never block the notifier.
			a.notify()
			a.notify()
			if !signalled(ch1) || signalled(ch1) {
				t.Fatal("want exactly one pending signal after two notifies")
			}
			b.notify()
			if !signalled(other) {
				t.Fatal("the other key's watcher was not signalled")
			}
		})
	}
}

func TestStop(t *testing.T) {
	for name, mk := range kinds() {
		t.Run(name, func(t *testing.T) {
			a, _ := mk()
			ch1, stop1 := a.watch()
			ch2, stop2 := a.watch()
			defer stop2()
			stop1()
			a.notify()
			if signalled(ch1) {
				t.Fatal("a stopped watcher was signalled")
			}
			if !signalled(ch2) {
				t.Fatal("stopping one watcher stopped another")
			}
			stop1() // a second stop is harmless
		})
	}
}

func TestSetDropsKeyWithLastWatcher(t *testing.T) {
	var s Set
	_, stop1 := s.Watch("a")
	_, stop2 := s.Watch("a")
	stop1()
	if len(s.m) != 1 {
		t.Fatalf("key dropped with a watcher left: %d keys", len(s.m))
	}
	stop2()
	if len(s.m) != 0 {
		t.Fatalf("%d keys left after every watcher stopped", len(s.m))
	}
	s.Notify([]string{"a", "b"}) // keys without watchers: nothing to do
	ch, stop := s.Watch("a")
	defer stop()
	s.Notify([]string{"a"})
	if !signalled(ch) {
		t.Fatal("a watcher of a dropped and re-watched key was not signalled")
	}
}
