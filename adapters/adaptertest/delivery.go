package adaptertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
)

// DeliveryOptions shapes the Delivery that BuildDelivery returns.
type DeliveryOptions struct {
	// Attachments is the number of Anlagen (default 2; negative means none).
	Attachments int
	// FormBytes pads the Fachdaten so the package reaches roughly this size (default
	// a few hundred bytes), for channels with size limits.
	FormBytes int
}

// NewDelivery returns a realistic Delivery for target: fresh UUIDs, a LeiKa key, an
// XML package and two attachments whose Open funcs stream in-memory bytes.
func NewDelivery(target adapters.Target) adapters.Delivery {
	return BuildDelivery(target, DeliveryOptions{})
}

// BuildDelivery is NewDelivery with options.
func BuildDelivery(target adapters.Target, o DeliveryOptions) adapters.Delivery {
	n := o.Attachments
	if n == 0 {
		n = 2
	}
	if n < 0 {
		n = 0
	}
	sub := newUUID()
	msg := newUUID()
	pkg := packageXML(sub, msg, o.FormBytes)
	d := adapters.Delivery{
		ID:            "dlv-" + newUUID(),
		SubmissionID:  sub,
		MessageID:     msg,
		Sender:        "amt24-sachsen",
		LeikaKey:      "99010003001006",
		ServiceName:   "Bauantrag",
		OfficeID:      "sn-14612000-bauamt",
		OfficeName:    "Bauaufsichtsamt Dresden",
		Target:        target,
		Attempt:       1,
		CreatedAt:     time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC),
		PackageSHA256: digest(pkg),
		PackageSize:   int64(len(pkg)),
		Package:       Opener(pkg),
	}
	for i := range n {
		body := attachmentBytes(sub, i)
		d.Attachments = append(d.Attachments, adapters.Attachment{
			ID:       fmt.Sprintf("anlage-%d", i+1),
			FileName: fmt.Sprintf("Anlage %d (Lageplan).pdf", i+1),
			MimeType: "application/pdf",
			Size:     int64(len(body)),
			SHA256:   digest(body),
			Open:     Opener(body),
		})
	}
	return d
}

// Opener returns an Open func over b: each call yields a fresh reader (every attempt
// reads from the start), and a done ctx is refused as the blob store would refuse it.
func Opener(b []byte) func(ctx context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}

// ReadAll reads what open yields; for harnesses and tests that need the bytes.
func ReadAll(ctx context.Context, open func(context.Context) (io.ReadCloser, error)) ([]byte, error) {
	rc, err := open(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// CountingOpener wraps open and counts its calls; a notify-only channel (webhook)
// uses it to prove it never reads the payload.
func CountingOpener(open func(context.Context) (io.ReadCloser, error), n *atomic.Int64) func(context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		n.Add(1)
		return open(ctx)
	}
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// SHA256Hex is the digest format used throughout the Delivery contract.
func SHA256Hex(b []byte) string { return digest(b) }

func newUUID() string {
	var b [16]byte
	// crypto/rand.Read never returns an error since Go 1.24 (it aborts instead).
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// packageXML is shaped like an Antragspaket so that channels which inspect the bytes
// see something plausible; it is not signed (adapters never verify signatures).
func packageXML(sub, msg string, formBytes int) []byte {
	pad := ""
	if formBytes > 0 {
		pad = strings.Repeat("x", formBytes)
	}
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>
<Antragspaket xmlns="urn:amtsbote:antragspaket:1" ID="` + sub + `">
  <Kopf>
    <NachrichtID>` + msg + `</NachrichtID>
    <Erstellt>2026-11-28T09:30:00Z</Erstellt>
    <Absender>amt24-sachsen</Absender>
    <Leistung><Schluessel>99010003001006</Schluessel><Name>Bauantrag</Name></Leistung>
    <Ort><ARS>146120000000</ARS><PLZ>01067</PLZ><Name>Dresden</Name></Ort>
    <Vertrauensniveau>substantiell</Vertrauensniveau>
  </Kopf>
  <Fachdaten schema="urn:xoev-de:bau:bauantrag:1">
    <Bauvorhaben>Einfamilienhaus mit Garage, Grüne Straße 12</Bauvorhaben>
    <Notiz>` + pad + `</Notiz>
  </Fachdaten>
</Antragspaket>
`)
}

func attachmentBytes(sub string, i int) []byte {
	// A PDF header and the ids keep every attachment distinct across deliveries, so
	// a receiver that mixes up attachments fails the digest comparison.
	return []byte(fmt.Sprintf("%%PDF-1.7\n%% amtsbote test attachment %d of %s\n%s\n%%%%EOF\n", i+1, sub, strings.Repeat("0123456789abcdef", 16*(i+1))))
}
