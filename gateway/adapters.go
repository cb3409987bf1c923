package gateway

import (
	"log/slog"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/config"
)

// newAdapters builds the delivery channels this gateway offers.
func newAdapters(cfg config.Config, log *slog.Logger) []adapters.Adapter {
	return nil
}
