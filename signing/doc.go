// Package signing owns everything about XML signatures and trust in amtsbote:
// enveloped XMLDSig signing and verification (RSA-SHA256 and ECDSA-P256-SHA256),
// the per-role trust store of portal, peer and office certificates, and the signed
// receipts (Eingangsbestaetigung, Zustellbestaetigung) the gateway hands out.
//
// Verification does not use goxmldsig's Validate: it runs its own strict path that
// accepts exactly one signature shape (one ds:Signature as a direct child of the root,
// one Reference to the root, enveloped + C14N transforms) and returns only an element
// re-parsed from the bytes that were digested. See docs/signing.md for why.
package signing
