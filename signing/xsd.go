package signing

import _ "embed"

// ReceiptSchema is quittung-v1.xsd, the schema of receipts, for serving or
// shipping next to receipts.
//
//go:embed quittung-v1.xsd
var ReceiptSchema []byte
