//go:build race

package store

// raceDetector: this test binary was built with -race, under which sync.Pool
// drops a random quarter of what is put back (sync/pool.go), so a count of
// allocations varies from run to run.
const raceDetector = true
