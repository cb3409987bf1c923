// Command scalegen fills a data folder with the history of a gateway that has run
// for years, without going through HTTP intake (which would take hours): it opens
// the bbolt store as the gateway does (store.Open with the gateway's certificates as
// known ones) and writes each submission with Create and Update, the way
// broker.Receive and delivery do, with real signed receipts.
//
// Usage (a data folder without the development PKI gets one, as `amtsbote serve`
// would make it):
//
//	go run ./internal/scalegen -data DIR [-n 300000] [-offices 50] [-big 20000]
//
// The first office is the development one (dresden-allgemeine-verwaltung, the one
// with a pull token and a mailbox user) with -big cases; the others share the rest.
// Submissions span three years, oldest first; those older than 90 days were answered
// and their bytes removed (the retention), newer ones keep a package blob. A few
// hundred at the end wait: queued, held or handed over. docs/performance.md ("A
// gateway with years of data") measures the gateway on what this writes.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/google/uuid"
)

const devOffice = "dresden-allgemeine-verwaltung"

func main() {
	data := flag.String("data", "", "data folder (with the development PKI)")
	n := flag.Int("n", 300000, "submissions")
	offices := flag.Int("offices", 50, "offices")
	big := flag.Int("big", 20000, "submissions of the development office")
	waiting := flag.Int("waiting", 600, "submissions at the end that wait (queued, held, handed over)")
	workers := flag.Int("workers", 64, "concurrent writers (they share commits)")
	flag.Parse()
	if *data == "" {
		log.Fatal("-data is required")
	}
	pki := filepath.Join(*data, "pki")
	// The gateway's own: serve and bench on this folder sign with what was
	// signed with here.
	if _, err := signing.EnsureDevPKI(pki, config.Default().GatewayID); err != nil {
		log.Fatal(err)
	}
	signer, err := signing.LoadSigner(filepath.Join(pki, "gateway-key.pem"), filepath.Join(pki, "gateway.pem"))
	if err != nil {
		log.Fatal(err)
	}
	trust, err := signing.LoadTrustStore(filepath.Join(pki, "trust"))
	if err != nil {
		log.Fatal(err)
	}
	var known [][]byte
	for _, c := range append(signer.Chain(), trust.Certificates()...) {
		known = append(known, []byte(base64.StdEncoding.EncodeToString(c.Raw)))
	}
	db, err := store.Open(*data, store.Options{Known: known, BatchSize: 64, BatchDelay: time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	end := time.Now().UTC().Add(-time.Hour)
	start := end.Add(-3 * 365 * 24 * time.Hour)
	span := end.Sub(start)
	var done atomic.Int64
	jobs := make(chan int, 1024)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				at := start.Add(time.Duration(float64(span) * float64(i) / float64(*n)))
				if err := one(db, signer, i, *n, *offices, *big, *waiting, at, end); err != nil {
					log.Fatalf("submission %d: %v", i, err)
				}
				if d := done.Add(1); d%20000 == 0 {
					log.Printf("%d submissions, %.0f/s", d, float64(d)/time.Since(t0).Seconds())
				}
			}
		}()
	}
	for i := 0; i < *n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	log.Printf("%d submissions in %s", *n, time.Since(t0).Round(time.Second))
}

// idAt is a UUIDv7 (the broker's ids) for time t: ids stay time-ordered.
func idAt(t time.Time) string {
	u := uuid.Must(uuid.NewV7())
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(u[0:6], ms[2:8])
	return u.String()
}

var services = []struct{ key, name string }{
	{"99050012104000", "Gewerbe anmelden"}, {"99050012104001", "Gewerbe ummelden"},
	{"99108008000000", "Wohngeld beantragen"}, {"99102013000000", "Hundesteuer anmelden"},
	{"99115005000000", "Meldebescheinigung beantragen"}, {"99088027000000", "Parkausweis für Anwohner beantragen"},
}

var places = []struct{ place, ars, name string }{
	{"01067 Dresden", "146120000000", "Dresden, Stadt"}, {"04109 Leipzig", "147130000000", "Leipzig, Stadt"},
	{"09111 Chemnitz", "145110000000", "Chemnitz, Stadt"}, {"02625 Bautzen", "146250020020", "Bautzen, Stadt"},
	{"01877 Bischofswerda", "146250060060", "Bischofswerda, Stadt"},
}

func one(db *store.DB, signer *signing.Signer, i, n, offices, big, waiting int, at, end time.Time) error {
	r := rand.New(rand.NewPCG(uint64(i), 42))
	office, officeName := devOffice, "Stadt Dresden, Abt. Allgemeine Verwaltung/Grundsatz"
	// Every n/big-th submission is the development office's.
	if i%(n/big) != 0 {
		k := 1 + r.IntN(offices-1)
		office, officeName = fmt.Sprintf("amt-%02d", k), fmt.Sprintf("Gemeindeverwaltung %02d, Bürgerbüro", k)
	}
	svc := services[r.IntN(len(services))]
	pl := places[r.IntN(len(places))]
	id := idAt(at)
	msg := uuid.NewString()
	recent := end.Sub(at) < 90*24*time.Hour
	pkg := fakePackage(r, id, msg)
	sum := sha256.Sum256(pkg)
	digest := hex.EncodeToString(sum[:])
	s, evs := submission.New(submission.Params{ID: id, DeliveryID: uuid.NewString(), MessageID: msg, Sender: "amt24", SignerID: "amt24",
		LeikaKey: svc.key, ServiceName: svc.name, Place: pl.place, AreaARS: pl.ars, AreaName: pl.name,
		OfficeID: office, OfficeName: officeName,
		Targets:       []submission.Target{{Channel: "webhook"}, {Channel: "mailbox"}},
		PackageSHA256: digest, PackageSize: int64(len(pkg))}, at)
	receipt, err := signer.SignReceipt(signing.Receipt{Kind: signing.KindEingang, SubmissionID: id, MessageID: msg, Sender: "amt24",
		LeikaKey: svc.key, OfficeID: office, OfficeName: officeName, GatewayID: "amtsbote-sn", Time: at, PackageSHA256: digest})
	if err != nil {
		return err
	}
	ctx := context.Background()
	var blobs []store.Blob
	if recent {
		blobs = []store.Blob{{SHA256: digest, Data: pkg}}
	}
	if _, _, _, err := db.CreateWithBlobs(ctx, s, evs, "Eingangsbestaetigung", receipt, blobs); err != nil {
		return err
	}
	w := n - 1 - i // how close to the end
	switch {
	case w < waiting/2: // queued: not yet tried
		return nil
	case w < waiting*3/4: // held: every channel failed
		_, err := db.Update(id, func(c *submission.Submission) ([]submission.Event, error) {
			e1, err := c.ChannelFailed(at.Add(time.Minute), c.Generation, submission.Reason{Public: "receiver answered HTTP 410", Internal: "webhook: 410 Gone"})
			if err != nil {
				return nil, err
			}
			e2, err := c.ChannelFailed(at.Add(2*time.Minute), c.Generation, submission.Reason{Public: "no mailbox user", Internal: "mailbox: office has no user"})
			return append(e1, e2...), err
		})
		return err
	case w < waiting: // handed over, waiting for the office's confirmation
		_, err := db.Update(id, func(c *submission.Submission) ([]submission.Event, error) {
			return c.HandOver(at.Add(time.Second), c.Generation, submission.Confirmation{Receiver: "transfer"})
		})
		return err
	}
	dAt := at.Add(time.Duration(1+r.IntN(120)) * time.Second)
	zr, err := signer.SignReceipt(signing.Receipt{Kind: signing.KindZustellung, SubmissionID: id, MessageID: msg, Sender: "amt24",
		LeikaKey: svc.key, OfficeID: office, OfficeName: officeName, GatewayID: "amtsbote-sn", Time: dAt, PackageSHA256: digest,
		DeliveryID: s.DeliveryID, Channel: "webhook", Receiver: "https://fv." + office + ".example/amtsbote"})
	if err != nil {
		return err
	}
	decided := !recent || r.IntN(3) > 0
	var reply []byte // the office's Bescheid to one in ten answered cases
	if decided && r.IntN(10) == 0 {
		reply = fakePackage(r, id, "reply")
		if recent { // older ones lost their bytes to the retention
			if _, err := db.Blobs().Put(reply); err != nil {
				return err
			}
		}
	}
	_, _, err = db.UpdateWithReceipt(id, "Zustellbestaetigung", zr, func(c *submission.Submission) ([]submission.Event, error) {
		var out []submission.Event
		if r.IntN(10) == 0 {
			e, err := c.AttemptFailed(at.Add(time.Second), c.Generation, submission.Reason{Public: "receiver answered HTTP 503", Internal: "webhook: 503 busy"}, dAt)
			if err != nil {
				return nil, err
			}
			out = append(out, e...)
		}
		e, err := c.Delivered(dAt, c.Generation, submission.Confirmation{Receiver: "https://fv." + office + ".example/amtsbote", Reference: "fv-" + id[:8]})
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
		if !decided {
			return out, nil
		}
		decAt := dAt.Add(time.Duration(1+r.IntN(14*24)) * time.Hour)
		if decAt.After(end) {
			decAt = end
		}
		outcome, reason := submission.OutcomeAccepted, ""
		if r.IntN(20) == 0 {
			outcome, reason = submission.OutcomeRejected, "Unterlagen unvollständig"
		}
		if e, err = c.Decide(decAt, channel.API, outcome, reason, "office "+office+" (pull API)"); err != nil {
			return nil, err
		}
		out = append(out, e...)
		if reply != nil {
			rb := reply
			rs := sha256.Sum256(rb)
			if e, err = c.AddReply(decAt, submission.Reply{ID: "r1", Kind: "Bescheid", MessageID: "xta-" + id, ContentType: "application/pdf",
				Size: int64(len(rb)), SHA256: hex.EncodeToString(rs[:]), Channel: "api", Actor: "office " + office}); err != nil {
				return nil, err
			}
			out = append(out, e...)
		}
		if !recent {
			if e, err = c.RemoveBytes(decAt.Add(90*24*time.Hour), "retention: 2160h0m0s after the office's answer"); err != nil {
				return nil, err
			}
			out = append(out, e...)
		}
		return out, nil
	})
	return err
}

// fakePackage is XML of a package's size and texture (6–14 KB).
func fakePackage(r *rand.Rand, id, msg string) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><Antrag xmlns="urn:amtsbote:paket" ID="` + id + `"><Kopf><NachrichtID>` + msg + `</NachrichtID></Kopf><Daten>`)
	for k := 0; k < 60+r.IntN(100); k++ {
		fmt.Fprintf(&b, `<Feld name="f%d">%x</Feld>`, k, r.Uint64())
	}
	b.WriteString(`</Daten></Antrag>`)
	return []byte(b.String())
}
