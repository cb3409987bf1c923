package paket

import (
	"fmt"

	"github.com/beevik/etree"
)

// ReadTree runs Scan on raw and then builds the element tree, the input the signature
// check needs. Errors are Scan's (ErrMalformed, *LimitError) or ErrMalformed when the
// tree builder refuses what Scan let through.
func ReadTree(raw []byte, lim Limits) (*etree.Document, error) {
	if err := Scan(raw, lim); err != nil {
		return nil, err
	}
	doc := etree.NewDocument()
	if d := lim.effective().MaxDepth; d > 0 {
		doc.ReadSettings.MaxDepth = d
	}
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if doc.Root() == nil {
		return nil, fmt.Errorf("%w: no root element", ErrMalformed)
	}
	return doc, nil
}

// ReadUnverified is ReadTree followed by Parse. It is for tools, tests and packages that
// were never signed; the gateway must Parse the element the signature check returned
// instead, or it would act on unauthenticated content.
func ReadUnverified(raw []byte, lim Limits) (*Paket, error) {
	doc, err := ReadTree(raw, lim)
	if err != nil {
		return nil, err
	}
	return Parse(doc.Root(), lim)
}
