package signingtest

import (
	"encoding/asn1"
	"math/big"
	"testing"
)

func toRaw(tb testing.TB, der []byte, n int) []byte {
	tb.Helper()
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		tb.Fatal(err)
	}
	out := make([]byte, 2*n)
	rs.R.FillBytes(out[:n])
	rs.S.FillBytes(out[n:])
	return out
}
