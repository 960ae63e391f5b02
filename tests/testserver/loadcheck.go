package testserver

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/loadtest"
)

// RequireInvariants checks a load run against the independent observer's
// findings: hard capacity by the workers' own clocks, exactly one outcome
// per task in the mailboxes, no duplicate start, no start at or after a
// deadline.
func RequireInvariants(t testing.TB, rep loadtest.Report) {
	t.Helper()
	require.Zero(t, rep.OverCapacity, "over-capacity instants; max overlap %v", rep.MaxOverlap)
	require.Zero(t, rep.NoOutcome, "tasks without an outcome")
	require.Zero(t, rep.DupOutcome, "tasks with more than one outcome")
	require.Zero(t, rep.DupStarts, "tasks started twice")
	require.Zero(t, rep.LateStarts, "tasks started at or after their deadline")
}

// RequireOutcomes checks that the n tasks of a load run, none rejected,
// ended as the load made them: the crashed ones and those whose lease ended
// before their completion timed out, the completed ones succeeded, only
// short-wait tasks expired, and nothing else.
func RequireOutcomes(t testing.TB, rep loadtest.Report, n int) {
	t.Helper()
	require.Equal(t, rep.Crashed+rep.LeaseLost, rep.Outcomes["timed_out"], "timed out: the crashed tasks and those whose lease ended before their completion")
	require.Equal(t, rep.Completed, rep.Outcomes["succeeded"])
	require.LessOrEqual(t, rep.Outcomes["expired"], rep.ShortWait, "only short-wait tasks may expire")
	require.Equal(t, n, rep.Outcomes["succeeded"]+rep.Outcomes["timed_out"]+rep.Outcomes["expired"])
}
