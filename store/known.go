package store

import (
	"bytes"
	"crypto/sha256"
	"fmt"

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

var knownPrefix = []byte("known\x00")

const knownIDLen = 8

// knownSet maps certificate text to its id and back.
type knownSet struct {
	byText map[string][knownIDLen]byte // the certificates to replace when writing
	byID   map[[knownIDLen]byte][]byte // every certificate the file has, for reading
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
	ks := &knownSet{byText: map[string][knownIDLen]byte{}, byID: map[[knownIDLen]byte][]byte{}}
	for _, t := range texts {
		if len(t) < 2*tokenLen || bytes.IndexAny(t, "\x00<") >= 0 {
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
		ks.byID[[knownIDLen]byte(k[len(knownPrefix):])] = copyBytes(v)
	}
	return ks, nil
}

const tokenLen = 1 + knownIDLen

var certTag = []byte("X509Certificate>")

// shrink replaces known certificate texts in v by tokens, appending the result to
// buf[:0]; ok is false when it replaced none (then v is returned as it is).
func (ks *knownSet) shrink(buf, v []byte) (out []byte, ok bool) {
	if ks == nil || len(ks.byText) == 0 || bytes.IndexByte(v, 0) >= 0 {
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
		if id, hit := ks.byText[string(v[start:end])]; hit {
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
			text = ks.byID[[knownIDLen]byte(v[i+1:i+tokenLen])]
		}
		if text == nil {
			return nil, fmt.Errorf("store: certificate %x: not in this file", v[i+1:i+tokenLen])
		}
		out = append(append(out, v[:i]...), text...)
		v = v[i+tokenLen:]
	}
}
