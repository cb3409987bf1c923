package gateway

import (
	"fmt"
	"log/slog"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/config"
)

// newAdapters builds the delivery channels this gateway offers.
func newAdapters(cfg config.Config, log *slog.Logger) ([]adapters.Adapter, error) {
	wh, err := webhook.New(webhook.Options{PublicBaseURL: cfg.PublicURL, Timeout: cfg.Delivery.AttemptTimeout, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("webhook adapter: %w", err)
	}
	return []adapters.Adapter{wh}, nil
}
