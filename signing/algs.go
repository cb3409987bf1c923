package signing

import (
	"crypto"
	_ "crypto/sha256" // register the hashes the accepted algorithms use
	_ "crypto/sha512"
)

// XML namespaces and algorithm URIs of the one signature shape we produce and accept.
const (
	NamespaceDSig   = "http://www.w3.org/2000/09/xmldsig#"
	AlgEnveloped    = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
	AlgSHA256       = "http://www.w3.org/2001/04/xmlenc#sha256"
	AlgSHA384       = "http://www.w3.org/2001/04/xmldsig-more#sha384"
	AlgSHA512       = "http://www.w3.org/2001/04/xmlenc#sha512"
	AlgRSASHA256    = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	AlgRSASHA384    = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
	AlgRSASHA512    = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
	AlgECDSASHA256  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	AlgECDSASHA384  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
	AlgECDSASHA512  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
	algKindRSA      = "rsa"
	algKindECDSA    = "ecdsa"
	idAttributeName = "ID"
)

var digestAlgs = map[string]crypto.Hash{
	AlgSHA256: crypto.SHA256,
	AlgSHA384: crypto.SHA384,
	AlgSHA512: crypto.SHA512,
}

type sigAlg struct {
	kind string
	hash crypto.Hash
}

var signatureAlgs = map[string]sigAlg{
	AlgRSASHA256:   {algKindRSA, crypto.SHA256},
	AlgRSASHA384:   {algKindRSA, crypto.SHA384},
	AlgRSASHA512:   {algKindRSA, crypto.SHA512},
	AlgECDSASHA256: {algKindECDSA, crypto.SHA256},
	AlgECDSASHA384: {algKindECDSA, crypto.SHA384},
	AlgECDSASHA512: {algKindECDSA, crypto.SHA512},
}
