//go:build !unix

package intake

import "time"

// processCPU is not available here: Yield then goes by its backlog alone.
func processCPU() (time.Duration, bool) { return 0, false }
