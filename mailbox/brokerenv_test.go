package mailbox

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/pull"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/xta"
)

// The offices of the real-broker tests: Dresden's Ordnungsamt gets the Amt24 example,
// Leipzig's is the second office that must not see it.
const (
	officeDresden = "sn-14612000-ordnungsamt"
	officeLeipzig = "sn-14713000-ordnungsamt"
	exampleLeika  = "99001001000000"
	noticeAddr    = "poststelle@ordnungsamt.dresden.example"
)

// brokerEnv is a real broker (bbolt store, embedded NATS JetStream) whose mailbox
// channel is the Mailbox under test.
type brokerEnv struct {
	b  *broker.Broker
	mb *Mailbox
}

type receiptStub struct{}

func (receiptStub) SignIntake(s *submission.Submission) ([]byte, error) {
	return []byte("<Eingangsbestaetigung>" + s.ID + "</Eingangsbestaetigung>"), nil
}
func (receiptStub) SignDelivery(s *submission.Submission, ch string, c submission.Confirmation) ([]byte, error) {
	return []byte("<Zustellbestaetigung>" + s.ID + " " + c.Receiver + "</Zustellbestaetigung>"), nil
}

// startBrokerEnv starts broker and mailbox in dir; opts.Desk, DataDir and the users
// are filled in. The users are anna (Dresden, "anna-passwort") and lars (Leipzig,
// "lars-passwort").
func startBrokerEnv(t *testing.T, dir string, opts Options) *brokerEnv {
	t.Helper()
	return startBrokerEnvOver(t, dir, opts, nil)
}

// startBrokerEnvOver is startBrokerEnv with the broker's store seen through
// wrap (if not nil), e.g. one that counts the reads.
func startBrokerEnvOver(t *testing.T, dir string, opts Options, wrap func(store.Store) store.Store) *brokerEnv {
	t.Helper()
	db, err := store.Open(dir+"/store", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var st store.Store = db
	if wrap != nil {
		st = wrap(db)
	}
	bs, err := bus.Start(context.Background(), bus.Options{StoreDir: dir + "/js", MaxMemory: 64 << 20, MaxStore: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	reg := adapters.NewRegistry()
	// Every office also has the pull channel, so that a case can wait for the
	// office's own system (receiveVia).
	reg.Register(pull.New())
	// And XTA in pull mode (the office's identifier is its id): the message
	// waits in its box, on its way to the office's system, as by the pull API.
	xa, err := xta.NewAdapter(xta.AdapterOptions{AuthorID: "amtsbote-test"})
	if err != nil {
		t.Fatal(err)
	}
	reg.Register(xa)
	chans := broker.ChannelsFunc(func(office, ch string) (adapters.Target, bool) {
		if ch == channel.API {
			return adapters.Target{Channel: channel.API}, true
		}
		if ch == channel.XTA {
			return adapters.Target{Channel: channel.XTA, Endpoint: office, Params: map[string]string{xta.ParamMode: xta.ModePull}}, true
		}
		if ch != channel.Mailbox {
			return adapters.Target{}, false
		}
		ep := ""
		if office == officeDresden {
			ep = noticeAddr
		}
		return adapters.Target{Channel: channel.Mailbox, Endpoint: ep}, true
	})
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		opts.Logger = log
	}
	cfg := broker.Config{Workers: 2, MaxAttempts: 3, BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
		AttemptTimeout: 5 * time.Second, ConfirmEvery: 200 * time.Millisecond, ExclusiveConsumer: true}
	b := broker.New(cfg, st, bs.JS, reg, chans, receiptStub{}, log, nil)
	opts.Desk = b
	opts.DataDir = dir + "/mailbox"
	opts.Users = append(opts.Users,
		User{Name: "anna", Office: officeDresden, PasswordHash: fastHash(t, "anna-passwort")},
		User{Name: "lars", Office: officeLeipzig, PasswordHash: fastHash(t, "lars-passwort")})
	mb, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	reg.Register(mb.Adapter())
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Stop(ctx)
		_ = mb.Close()
		_ = bs.Close()
		_ = db.Close()
	})
	return &brokerEnv{b: b, mb: mb}
}

// testSigner is a throw-away portal key (ECDSA P-256, self-signed); the broker does
// not verify signatures (intake does), but the stored package is shaped like a real one.
func testSigner(t testing.TB) *signing.Signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: paket.ExampleSender},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.NewSigner(key, []*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// receiveExample receives the signed Amt24 example package (Iris Hübner's report of a
// full litter bin, with its PDF) for office over the mailbox channel.
func (e *brokerEnv) receiveExample(t testing.TB, office string) *submission.Submission {
	t.Helper()
	return e.receiveNamed(t, office, "")
}

// receiveHandedOver is receiveExample, waiting until the broker has handed the
// case to the mailbox (the state a clerk sees it in).
func (e *brokerEnv) receiveHandedOver(t testing.TB, office string) *submission.Submission {
	t.Helper()
	sub := e.receiveExample(t, office)
	e.waitState(t, sub.ID, submission.StateHandedOver)
	return sub
}

// login is a browser of the mailbox logged in as user.
func (e *brokerEnv) login(t testing.TB, user, password string) *client {
	t.Helper()
	c := newClient(t, e.mb.Handler())
	c.mustLogin(user, password)
	return c
}

// receiveNamed is receiveExample with the attachment's file name set (if not empty).
func (e *brokerEnv) receiveNamed(t testing.TB, office, fileName string) *submission.Submission {
	t.Helper()
	return e.receiveVia(t, office, fileName, channel.Mailbox)
}

// receiveVia is receiveNamed over channel ch: channel.API for a case that
// waits for the office's own system to fetch it.
func (e *brokerEnv) receiveVia(t testing.TB, office, fileName, ch string) *submission.Submission {
	t.Helper()
	return e.receiveFor(t, office, fileName, ch)
}

// receiveFor is receiveNamed with the targets chs in their order: channel.XTA
// then channel.Mailbox for a case on its way to the office's system by XTA,
// with the mailbox its fallback (a clerk may take it over).
func (e *brokerEnv) receiveFor(t testing.TB, office, fileName string, chs ...string) *submission.Submission {
	t.Helper()
	return e.receiveInCase(t, office, fileName, "", chs...)
}

// receiveInCase is receiveFor of a Nachreichung to the case caseID ("": a
// new case).
func (e *brokerEnv) receiveInCase(t testing.TB, office, fileName, caseID string, chs ...string) *submission.Submission {
	t.Helper()
	p := paket.Example(exampleLeika)
	if fileName != "" {
		p.Anlagen[0].Dateiname = fileName
	}
	raw, err := testSigner(t).Sign(p.Element())
	if err != nil {
		t.Fatal(err)
	}
	in := broker.Intake{
		MessageID: p.Kopf.NachrichtID, Sender: p.Kopf.Absender, SignerID: p.Kopf.Absender,
		LeikaKey: exampleLeika, ServiceName: paket.ExampleServiceName, Place: paket.ExamplePlace,
		AreaARS: "146120000000", AreaName: "Dresden, Stadt", OfficeID: office, OfficeName: "Ordnungsamt",
		Package: raw, CaseID: caseID,
	}
	for _, ch := range chs {
		in.Targets = append(in.Targets, submission.Target{Channel: ch})
	}
	for _, a := range p.Anlagen {
		in.Attachments = append(in.Attachments, broker.AttachmentIn{
			Meta: submission.Attachment{ID: a.ID, FileName: a.Dateiname, MimeType: a.MimeType}, Content: a.Inhalt})
	}
	r, err := e.b.Receive(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return r.Submission
}

// waitState waits until the submission reaches state.
func (e *brokerEnv) waitState(t testing.TB, id string, want submission.State) *submission.Submission {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := e.b.Submission(id)
		if err == nil && s.State == want {
			return s
		}
		if time.Now().After(deadline) {
			evs, _ := e.b.Log(id)
			t.Fatalf("submission %s: state %v (err %v), want %s; events %+v", id, s.State, err, want, evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// annaOnAClock is a broker-backed mailbox on a test clock with one case handed
// over to Dresden and anna signed in: the start of every test of what happens
// when her session ends (clock.Add(int64(sessionIdle + time.Minute))) in the
// middle of her work.
func annaOnAClock(t *testing.T) (*brokerEnv, *atomic.Int64, *submission.Submission, *client) {
	t.Helper()
	clock := new(atomic.Int64)
	clock.Store(time.Now().UnixNano())
	e := startBrokerEnv(t, t.TempDir(), Options{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	sub := e.receiveHandedOver(t, officeDresden)
	return e, clock, sub, e.login(t, "anna", "anna-passwort")
}
