package webhook_test

import (
	"errors"
	"log"
	"net/http"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
)

// An office's Fachverfahren receiving notifications: verify, store, answer, and fetch
// the package later with its bearer token (see docs/webhook.md).
func ExampleReadVerified() {
	secret := webhook.NewSecret() // in practice: from the office's configuration
	http.HandleFunc("/eingang", func(w http.ResponseWriter, r *http.Request) {
		n, _, err := webhook.ReadVerified(r, secret, time.Now(), 0)
		var ve *webhook.VerifyError
		switch {
		case errors.As(err, &ve):
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		case err != nil:
			http.Error(w, "bad notification", http.StatusBadRequest)
			return
		}
		// Store n keyed by n.DeliveryID (duplicates are normal), then answer.
		log.Printf("submission %s ready at %s", n.SubmissionID, n.Links.Package)
		w.WriteHeader(http.StatusNoContent)
	})
}
