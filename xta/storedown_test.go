package xta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
)

// countingDesk is the real desk that counts its List calls and answers them with
// err when set, as a store without quorum does after its timeout.
type countingDesk struct {
	broker.OfficeDesk
	lists *atomic.Int32
	err   error
}

func (d countingDesk) List(ctx context.Context, officeID string, q broker.ListQuery) (broker.Page, error) {
	d.lists.Add(1)
	if d.err != nil {
		return broker.Page{}, d.err
	}
	return d.OfficeDesk.List(ctx, officeID, q)
}

// TestStoreDownIsATechnicalProblem: while the gateway knows its store is out of
// reach (Options.StoreDown) an operation is a TechnicalProblemException at once,
// without asking the desk (which would wait out the store's 30 s); and a desk
// that fails with the store out of reach gives the same fault with the same
// text, not "internal error".
func TestStoreDownIsATechnicalProblem(t *testing.T) {
	for _, tc := range []struct {
		name      string
		down      error
		deskErr   error
		wantLists int32
	}{
		{"known down", errors.New("the NATS cluster does not answer for the store"), nil, 0},
		{"found down", nil, fmt.Errorf("jsstore: list: %w", broker.ErrStoreUnavailable), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lists atomic.Int32
			e := startEnv(t, func(o *Options) {
				o.Desk = countingDesk{OfficeDesk: o.Desk, lists: &lists, err: tc.deskErr}
				o.StoreDown = func() error { return tc.down }
			})
			req, err := http.NewRequest(http.MethodPost, e.base+PathRecipient, strings.NewReader(string(soapUIRequest(xtaA, "", statusListBody(false, 10, time.Time{}, time.Time{})))))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", actionCT(portRecipient, "getStatusList"))
			resp, err := e.client("office-a").Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), "TechnicalProblemException") || !strings.Contains(string(body), "does not answer now") ||
				strings.Contains(string(body), "NATS") {
				t.Errorf("getStatusList: %d\n%s", resp.StatusCode, body)
			}
			if n := lists.Load(); n != tc.wantLists {
				t.Errorf("the desk was asked %d times, want %d", n, tc.wantLists)
			}
		})
	}
}
