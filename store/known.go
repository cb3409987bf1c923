package store

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Certificates are stored once, not in every value.
//
// A signed receipt carries the gateway's certificate chain in
// <ds:X509Certificate> elements, a signed package the portal's: base64 that no
// compressor shrinks, about 1.5 KB of a 2.3 KB compressed receipt and of a
// 4.3 KB compressed package. Two receipts and a package per submission made the
// chain most of what bbolt wrote for it, and pushed the package over a page.
//
// The store is told at Open which certificates to expect (Options.Known: the
// gateway's chain, the trusted senders' certificates), keeps each once in the
// meta bucket under "known\x00" and its id, and replaces the text of an
// <…X509Certificate> element that equals one of them by a token: a NUL byte and
// the 8-byte id. XML cannot contain NUL, and a value that does (a binary
// attachment) is left as it is, so a token can never be mistaken for content.
// Reading puts the text back; the bytes come back exactly as they were given (the
// signatures over them stay valid), which TestKnownCertificatesRoundTrip checks.
// Ids stay in the file for good: a value written under an older chain is read
// with the chain it was written with.
//
// A sender's own certificate is learned as well. Senders are CA-issued as a rule,
// so their leaf is in no trust store, yet it is in every package they send: ~1.2 KB
// of base64 that kept the bench's package at 4.9 KB after S2, one byte over a
// page, so every package cost two pages. The broker names the certificate intake
// verified the package with (Blob.Recurring); the store keeps it once like the
// others. Its row in the meta bucket is written in the same transaction as the
// first values that use its token (so no committed value can name a certificate
// the file lacks), and until such a transaction has committed no other value
// uses the token (shrink's own). At most maxKnown certificates are kept: a
// certificate beyond them simply stays in its values.

var knownPrefix = []byte("known\x00")

const knownIDLen = 8

// maxKnown bounds the certificates a store keeps once (the texts given at Open
// count too): a sender's certificate is learned only while fewer are kept.
const maxKnown = 1024

// knownSet maps certificate text to its id and back.
type knownSet struct {
	mu     sync.RWMutex
	byText map[string][knownIDLen]byte // the certificates to replace when writing
	byID   map[[knownIDLen]byte][]byte // every certificate the file has, for reading
	// unsure are learned ids whose meta row no transaction has committed yet:
	// only values written with the row may use their tokens.
	unsure map[[knownIDLen]byte]bool
}

// learned is a certificate a write keeps once: its row goes into the write's
// transaction unless the file has it already.
type learned struct {
	id   [knownIDLen]byte
	text []byte
}

// learn adds a sender's certificate text (as in <ds:X509Certificate>) to the set.
// ok is false when the text is no candidate or the set is full; row is true when
// the caller's transaction must write the certificate's meta row (writeRow), and
// then, after that transaction committed, call durable.
func (ks *knownSet) learn(text []byte) (l learned, row, ok bool) {
	if ks == nil || len(text) < 2*tokenLen || bytes.ContainsAny(text, "\x00<") {
		return learned{}, false, false
	}
	ks.mu.RLock()
	id, have := ks.byText[string(text)]
	unsure := ks.unsure[id]
	ks.mu.RUnlock()
	if have {
		return learned{id, text}, unsure, true
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if id, have := ks.byText[string(text)]; have { // learned meanwhile
		return learned{id, text}, ks.unsure[id], true
	}
	if len(ks.byText) >= maxKnown {
		return learned{}, false, false
	}
	id = knownID(text)
	if old, in := ks.byID[id]; in && !bytes.Equal(old, text) {
		return learned{}, false, false // a hash collision: keep the text in the value
	}
	t := copyBytes(text)
	ks.byText[string(t)] = id
	if _, in := ks.byID[id]; !in { // not in the file yet
		ks.byID[id] = t
		ks.unsure[id] = true
	}
	return learned{id, t}, ks.unsure[id], true
}

// writeRow writes l's meta row in tx (the same text under the same id as any other
// write of it, so concurrent writers agree).
func writeRow(tx *wtx, l learned) error {
	k := append(append([]byte{}, knownPrefix...), l.id[:]...)
	if v := tx.Bucket(bucketMeta).Get(k); v != nil {
		return nil
	}
	return tx.bucket(bucketMeta).Put(k, l.text)
}

// durable marks rows that a committed transaction wrote: every value may use them.
func (ks *knownSet) durable(ls []learned) {
	if len(ls) == 0 {
		return
	}
	ks.mu.Lock()
	for _, l := range ls {
		delete(ks.unsure, l.id)
	}
	ks.mu.Unlock()
}

func knownID(text []byte) (id [knownIDLen]byte) {
	sum := sha256.Sum256(text)
	copy(id[:], sum[:])
	return id
}

// loadKnown stores the certificates given at Open (those not stored yet) and
// reads every stored one, in the transaction that opens the store.
func loadKnown(tx *bolt.Tx, texts [][]byte) (*knownSet, error) {
	meta := tx.Bucket(bucketMeta)
	ks := &knownSet{byText: map[string][knownIDLen]byte{}, byID: map[[knownIDLen]byte][]byte{}, unsure: map[[knownIDLen]byte]bool{}}
	for _, t := range texts {
		if len(t) < 2*tokenLen || bytes.ContainsAny(t, "\x00<") {
			continue // too short to gain anything, or not element text
		}
		id := knownID(t)
		k := append(append([]byte{}, knownPrefix...), id[:]...)
		if v := meta.Get(k); v == nil {
			if err := meta.Put(k, t); err != nil {
				return nil, err
			}
		} else if !bytes.Equal(v, t) {
			return nil, fmt.Errorf("store: known certificate %x: two texts with one id", id)
		}
		ks.byText[string(t)] = id
	}
	c := meta.Cursor()
	for k, v := c.Seek(knownPrefix); k != nil && bytes.HasPrefix(k, knownPrefix); k, v = c.Next() {
		if len(k) != len(knownPrefix)+knownIDLen {
			return nil, fmt.Errorf("store: meta key %q: not a known certificate", k)
		}
		id := [knownIDLen]byte(k[len(knownPrefix):])
		ks.byID[id] = copyBytes(v)
		if len(ks.byText) < maxKnown {
			// Learned by an earlier run (or given to one): in the file for good, so
			// values may use it from the start.
			ks.byText[string(ks.byID[id])] = id
		}
	}
	return ks, nil
}

const tokenLen = 1 + knownIDLen

var certTag = []byte("X509Certificate>")

// shrink replaces known certificate texts in v by tokens, appending the result to
// buf[:0]; ok is false when it replaced none (then v is returned as it is). own
// are the learned certificates whose rows the caller's transaction writes: of the
// certificates not yet durable, only those are replaced.
func (ks *knownSet) shrink(buf, v []byte, own ...learned) (out []byte, ok bool) {
	if ks == nil || bytes.IndexByte(v, 0) >= 0 {
		return v, false
	}
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	if len(ks.byText) == 0 {
		return v, false
	}
	copied := 0 // v[:copied] is in out
	for pos := 0; ; {
		i := bytes.Index(v[pos:], certTag)
		if i < 0 {
			break
		}
		start := pos + i + len(certTag)
		n := bytes.IndexByte(v[start:], '<')
		if n < 0 {
			break
		}
		end := start + n
		if id, hit := ks.byText[string(v[start:end])]; hit && (!ks.unsure[id] || owns(own, id)) {
			if out == nil {
				out = buf[:0]
			}
			out = append(append(append(out, v[copied:start]...), 0), id[:]...)
			copied = end
		}
		pos = end
	}
	if out == nil {
		return v, false
	}
	return append(out, v[copied:]...), true
}

// expand puts the certificate texts back for the tokens in v.
func (ks *knownSet) expand(v []byte) ([]byte, error) {
	out := make([]byte, 0, len(v)+2048)
	for {
		i := bytes.IndexByte(v, 0)
		if i < 0 {
			return append(out, v...), nil
		}
		if len(v)-i < tokenLen {
			return nil, fmt.Errorf("store: cut certificate token")
		}
		var text []byte
		if ks != nil {
			ks.mu.RLock()
			text = ks.byID[[knownIDLen]byte(v[i+1:i+tokenLen])]
			ks.mu.RUnlock()
		}
		if text == nil {
			return nil, fmt.Errorf("store: certificate %x: not in this file", v[i+1:i+tokenLen])
		}
		out = append(append(out, v[:i]...), text...)
		v = v[i+tokenLen:]
	}
}

func owns(own []learned, id [knownIDLen]byte) bool {
	for _, l := range own {
		if l.id == id {
			return true
		}
	}
	return false
}
