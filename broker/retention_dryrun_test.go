package broker

import (
	"context"
	"testing"
	"time"
)

// TestGCDryRunCountsOnlyBlobsPastTheirGrace: a dry run answers what a run would
// remove (`amtsbote gc -dry-run`), and a run never sweeps a blob no record
// references yet that is younger than retention.blob_grace: a request under way
// stored it and is about to commit the record that names it. The dry run
// counted such a blob as removed, which the run then did not do.
func TestGCDryRunCountsOnlyBlobsPastTheirGrace(t *testing.T) {
	e := start(t, t.TempDir(), &scripted{channel: "primary"})
	ctx := context.Background()
	if _, err := e.db.Blobs().Put([]byte("the package of a request still under way")); err != nil {
		t.Fatal(err)
	}
	r := Retention{BlobGrace: time.Hour, CompactMinFree: -1}
	dry, err := e.b.GCWith(ctx, time.Now(), r, GCOptions{DryRun: true})
	if err != nil || dry.BlobsDeleted != 0 || dry.BlobBytesFreed != 0 {
		t.Fatalf("dry run with a fresh unreferenced blob: %+v %v; want nothing swept", dry, err)
	}
	run, err := e.b.GC(ctx, time.Now(), r)
	if err != nil || run.BlobsDeleted != 0 {
		t.Fatalf("run: %+v %v", run, err)
	}
	// Past the grace both agree that it goes.
	later := time.Now().Add(2 * time.Hour)
	if dry, err = e.b.GCWith(ctx, later, r, GCOptions{DryRun: true}); err != nil || dry.BlobsDeleted != 1 {
		t.Fatalf("dry run past the grace: %+v %v", dry, err)
	}
	if run, err = e.b.GC(ctx, later, r); err != nil || run.BlobsDeleted != 1 {
		t.Fatalf("run past the grace: %+v %v", run, err)
	}
}
