// Command gendata rebuilds routing/data/places.tsv.gz from ../shared/data; it is what
// `go generate ./routing/...` runs.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/amtsbote/amtsbote/routing/internal/gen"
)

func main() {
	res, err := gen.Run(context.Background(), gen.Config{Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendata:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s: %d areas, %d municipalities, %d postcodes\n", res.File, res.Areas, res.Municipalities, res.Postcodes)
}
