package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// hangGuard bounds each wait on the browser: far beyond what any of them
// takes on a slow machine, so that only a hang reaches it.
const hangGuard = 3 * time.Minute

// chromiumPath finds the browser, or fails the test saying how to get it.
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("headless Chromium is missing: install it with `apt-get install -y chromium` (.ci/run does), or set CHROMIUM to its path")
	return ""
}

// siteDir is the page as `make wasm` assembles it in dist/web, built from
// the source once for the package's tests by TestMain.
var siteDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parkinglot-web-")
	if err != nil {
		panic(err)
	}
	if err := buildSite(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	siteDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// buildSite builds the wasm and assembles the page into dir.
func buildSite(dir string) error {
	_, here, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(here), "..", "..")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "parkinglot.wasm"), "./cmd/parkinglot-wasm")
	build.Dir = root
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the wasm: %v\n%s", err, out)
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return fmt.Errorf("go env GOROOT: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(root, "web", "*.*"))
	if err != nil {
		return err
	}
	files = append(files, filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// outputDir is where the screenshot goes: $TEST_OUTPUT when set, else the
// test's temporary directory.
func outputDir(t testing.TB) string {
	if d := os.Getenv("TEST_OUTPUT"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

// browser starts headless Chromium with a fresh profile, and returns the
// context of its first tab.
func browser(t testing.TB) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		// This network is closed: without these, Chromium's own
		// connections (updates, sync, QUIC probes) are refused and slow
		// it down.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Tabs in the background keep their timers running at full rate.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.WindowSize(1100, 800),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancel)
	// The first run starts the browser, which lives as long as that run's
	// context: this one, not one with a hang guard's timeout.
	require.NoError(t, chromedp.Do(ctx), "starting %s", chromiumPath(t))
	return ctx
}

// tab opens url in a new tab of the browser of ctx (in its first tab when
// first) and waits for the demo to be ready.
func tab(t testing.TB, ctx context.Context, url string, first bool) (context.Context, context.CancelFunc) {
	t.Helper()
	tctx, cancel := ctx, context.CancelFunc(func() {})
	if !first {
		tctx, cancel = chromedp.NewContext(ctx)
		require.NoError(t, chromedp.Do(tctx), "opening a tab") // the tab lives as long as tctx
	}
	do(t, tctx, chromedp.Navigate(url), ready())
	return tctx, cancel
}

// ready waits until the demo page has started its scheduler.
func ready() chromedp.Action[chromedp.Void] {
	return poll(`window.demo && window.demo.ready === true`)
}

func poll(predicate string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingTimeout(hangGuard))
}

// do runs actions on a tab within the hang guard.
func do(t testing.TB, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, actions...))
}

// eval evaluates js on a tab, awaiting a promise, within the hang guard.
func eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	require.NoError(t, err, "evaluating %s", js)
	return v
}

// observations is what a demo page saw.
type observations struct {
	Held []struct {
		ID    string  `json:"id"`
		Pool  string  `json:"pool"`
		Start float64 `json:"start"`
		End   float64 `json:"end"`
	} `json:"held"`
	Failures []string       `json:"failures"`
	Started  map[string]int `json:"started"`
	Outcomes map[string]int `json:"outcomes"`
}

// twoTabs opens the demo page in two tabs of a fresh browser, sharing
// one SharedWorker; closeB closes the second.
func twoTabs(t *testing.T) (a, b context.Context, closeB context.CancelFunc) {
	t.Helper()
	url := site(t) + "/demo.html"
	ctx := browser(t)
	a, _ = tab(t, ctx, url, true)
	b, closeB = tab(t, ctx, url, false)
	return a, b, closeB
}

func TestBurstAcrossTwoTabs(t *testing.T) {
	t.Parallel()
	a, b, closeB := twoTabs(t)
	defer closeB()

	// 1,000 permits of one pool, 500 from each tab at once, each held for
	// up to 2 ms of the page's own time.
	const perTab, capacity = 500, 4
	var wg sync.WaitGroup
	for _, tc := range []context.Context{a, b} {
		wg.Go(func() {
			eval[map[string]any](t, tc, `demo.burst('uploads', 500, 2)`)
			eval[bool](t, tc, `demo.settled().then(() => true)`)
		})
	}
	wg.Wait()

	obs := [2]observations{eval[observations](t, a, `demo.observations()`), eval[observations](t, b, `demo.observations()`)}

	// Every task: held once, by one tab, with one started message and
	// one outcome in that tab's mailbox.
	type interval struct{ start, end float64 }
	var all []interval
	seen := map[string]bool{}
	for i, o := range obs {
		require.Empty(t, o.Failures, "tab %d: refusals", i)
		require.Len(t, o.Held, perTab, "tab %d: permits held", i)
		for _, h := range o.Held {
			require.False(t, seen[h.ID], "task %s held twice", h.ID)
			seen[h.ID] = true
			require.Equal(t, 1, o.Started[h.ID], "task %s: started messages", h.ID)
			require.Equal(t, 1, o.Outcomes[h.ID], "task %s: outcome messages", h.ID)
			require.Positive(t, h.End, "task %s: never released", h.ID)
			require.GreaterOrEqual(t, h.End, h.Start, "task %s: released before it started", h.ID)
			all = append(all, interval{h.Start, h.End})
		}
		require.Len(t, o.Outcomes, perTab, "tab %d: outcomes for tasks it did not hold", i)
	}
	require.Len(t, seen, 2*perTab)

	// Running never exceeded capacity across the tabs, as the pages saw
	// it: each page's interval lies within the scheduler's hold of the
	// slot (it starts after the start is committed and ends before the
	// release is sent), so an overlap the pages see is a real one.
	type edge struct {
		at    float64
		delta int
	}
	var edges []edge
	for _, iv := range all {
		edges = append(edges, edge{iv.start, 1}, edge{iv.end, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at != edges[j].at {
			return edges[i].at < edges[j].at
		}
		return edges[i].delta < edges[j].delta // an end before a start at the same instant
	})
	running, peak := 0, 0
	for _, e := range edges {
		running += e.delta
		peak = max(peak, running)
	}
	require.LessOrEqual(t, peak, capacity, "permits held at once across the two tabs")
	require.Greater(t, peak, 1, "the burst never ran two permits at once: it tested nothing")
	t.Logf("1,000 permits across 2 tabs: peak %d held at once (capacity %d)", peak, capacity)

	// The pool is idle again, as both tabs see it.
	pools := eval[[]struct {
		Name    string `json:"name"`
		Running int    `json:"running"`
		Parked  int    `json:"parked"`
	}](t, b, `demo.lot.pools()`)
	for _, p := range pools {
		require.Zero(t, p.Running+p.Parked, "pool %s after the burst", p.Name)
	}

	// Once the page's own view shows every outcome and an idle pool.
	do(t, a, poll(`document.getElementById('summary').textContent.includes(' 500 outcomes') &&
		document.getElementById('run-uploads').textContent === '0'`))
	png, err := chromedp.Run(a, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	shot := filepath.Join(outputDir(t), "burst-two-tabs.png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot: %s", shot)
}

// site serves the page built from the source on a loopback server.
func site(t testing.TB) string { return serve(t, http.FileServer(http.Dir(siteDir))) }

// isolatedSite is site with the headers that make the page cross-origin
// isolated, which gives performance.now, and so Go's monotonic clock in
// the wasm, 5 µs resolution rather than 100 µs: for the benchmarks.
func isolatedSite(t testing.TB) string {
	files := http.FileServer(http.Dir(siteDir))
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cross-Origin-Opener-Policy", "same-origin")
		w.Header().Set("Cross-Origin-Embedder-Policy", "require-corp")
		files.ServeHTTP(w, r)
	}))
}

func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestClosedTabFreesItsPermits closes a tab that holds every slot of a
// pool and waits for one more, while another tab waits behind it: the
// closed tab's permits are cancelled at once (its pagehide says goodbye,
// or its Web Lock goes to the worker), its waiting acquire too, and the
// other tab's permit starts — not a minute later, when the leases would
// have run out.
func TestClosedTabFreesItsPermits(t *testing.T) {
	t.Parallel()
	a, b, closeB := twoTabs(t)

	held := eval[[]string](t, b, `Promise.all([0, 1, 2, 3].map(() => demo.lot.acquire('uploads'))).then((ps) => { window.kept = ps; return ps.map((p) => p.id); })`)
	require.Len(t, held, 4)
	// One more from b and one from a wait behind them.
	eval[bool](t, b, `(window.more = demo.lot.acquire('uploads', {recipient: 'b-more'}), true)`)
	eval[bool](t, a, `(window.waiting = demo.lot.acquire('uploads', {heartbeat: false}), true)`)
	eval[bool](t, a, `(async () => {
		while ((await demo.lot.pools()).find((p) => p.name === 'uploads').parked < 2) await new Promise((r) => setTimeout(r, 10));
		return true;
	})()`)
	more := eval[string](t, a, `(async () => {
		const {events} = await demo.lot.audit({pool: 'uploads', limit: 1000});
		for (const e of events.filter((e) => e.to === 'parked')) {
			if ((await demo.lot.task(e.taskId)).recipient === 'b-more') return e.taskId;
		}
		return '';
	})()`)
	require.NotEmpty(t, more, "b's parked acquire")

	closeB()
	state := eval[string](t, a, `window.waiting.then((p) => p.task.state)`)
	require.Equal(t, "running", state)
	for _, id := range append(held, more) {
		got := eval[string](t, a, `demo.lot.task('`+id+`').then((t) => t.state)`)
		require.Equal(t, "cancelled", got, "task %s of the closed tab", id)
	}
	running := eval[int](t, a, `demo.lot.pools().then((ps) => ps.find((p) => p.name === 'uploads').running)`)
	require.Equal(t, 1, running, "only a's permit holds a slot")
}

// TestReloadKeepsMailboxAndAudit reloads a page whose scheduler runs in a
// dedicated worker, so that the reload starts a new one: the mailbox (with
// its cursors) and the audit trail come back from IndexedDB.
func TestReloadKeepsMailboxAndAudit(t *testing.T) {
	t.Parallel()
	url := site(t) + "/demo.html?shared=0"
	ctx := browser(t)
	a, _ := tab(t, ctx, url, true)

	const setup = `(async () => {
		const ids = [];
		for (let i = 0; i < 5; i++) {
			const t = await demo.lot.submit('api', {i}, {recipient: 'kept'});
			ids.push(t.id);
			if (i % 2 === 0) await demo.lot.complete(t.id, {lease: t.lease, result: {i}});
		}
		await demo.lot.flush();
		return ids;
	})()`
	require.True(t, eval[bool](t, a, `demo.lot.persistent`), "the page's worker keeps its mailbox in IndexedDB")
	ids := eval[[]string](t, a, setup)
	require.Len(t, ids, 5)
	const read = `(async () => JSON.stringify({
		mail: (await demo.lot.mailboxPage('kept')).messages,
		audit: (await demo.lot.audit({pool: 'api', limit: 1000})).events,
	}))()`
	before := eval[string](t, a, read)
	require.Contains(t, before, ids[4])

	do(t, a, chromedp.Reload(), ready())
	require.True(t, eval[bool](t, a, `demo.lot.persistent`), "the reloaded page's worker is the writer again")
	after := eval[string](t, a, read)
	require.JSONEq(t, before, after, "mailbox and audit after the reload")
	// A second tab with a dedicated worker of its own runs in memory
	// alone: two writers would number their messages alike.
	second, closeSecond := tab(t, ctx, url, false)
	defer closeSecond()
	require.False(t, eval[bool](t, second, `demo.lot.persistent`), "a second dedicated worker of the origin must not write")

	// Tasks are not kept: the reload's worker knows none of them.
	got := eval[string](t, a, `demo.lot.task('`+ids[1]+`').then(() => 'found', (e) => e.code)`)
	require.Equal(t, "not_found", got)
}
