package gateway

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/amtsbote/amtsbote/submission"
)

type storeSubmission = submission.Submission

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
