package signing

// For the external tests: both ways of signing a receipt, with sign standing in
// for the key (deterministic, so the two outputs can be compared byte for byte).

// SignReceiptWritten is SignReceipt's path (receiptwriter.go).
func (s *Signer) SignReceiptWritten(r Receipt, sign func([]byte) ([]byte, error)) ([]byte, error) {
	return s.writeReceipt(r, sign)
}

// SignReceiptCanonicalized is the general path: the element built with etree,
// signed and canonicalized like any document.
func (s *Signer) SignReceiptCanonicalized(r Receipt, sign func([]byte) ([]byte, error)) ([]byte, error) {
	el, err := ReceiptElement(r)
	if err != nil {
		return nil, err
	}
	return s.signOwned(el, sign)
}
