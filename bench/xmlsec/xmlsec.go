//go:build xmlsec

package xmlsec

/*
#cgo pkg-config: xmlsec1-openssl
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/crypto.h>

static int amts_init(void) {
	xmlInitParser();
	if (xmlSecInit() < 0) return -1;
	if (xmlSecCheckVersion() != 1) return -2;
	if (xmlSecCryptoAppInit(NULL) < 0) return -3;
	if (xmlSecCryptoInit() < 0) return -4;
	return 0;
}

static xmlSecKeysMngrPtr amts_mngr(const char *pem, int len) {
	xmlSecKeysMngrPtr m = xmlSecKeysMngrCreate();
	if (m == NULL) return NULL;
	if (xmlSecCryptoAppDefaultKeysMngrInit(m) < 0 ||
	    xmlSecCryptoAppKeysMngrCertLoadMemory(m, (const xmlSecByte *)pem, (xmlSecSize)len,
	        xmlSecKeyDataFormatPem, xmlSecKeyDataTypeTrusted) < 0) {
		xmlSecKeysMngrDestroy(m);
		return NULL;
	}
	return m;
}

static void amts_free_mngr(xmlSecKeysMngrPtr m) { xmlSecKeysMngrDestroy(m); }

// Returns 1 if the signature verifies, 0 if it does not, < 0 on errors.
static int amts_verify(xmlSecKeysMngrPtr m, const char *buf, int len) {
	static const xmlChar *ids[] = { BAD_CAST "ID", NULL };
	int ret = -1;
	xmlSecDSigCtxPtr ctx = NULL;
	xmlDocPtr doc = xmlReadMemory(buf, len, NULL, NULL, XML_PARSE_NONET);
	if (doc == NULL || xmlDocGetRootElement(doc) == NULL) goto done;
	xmlSecAddIDs(doc, xmlDocGetRootElement(doc), ids);
	xmlNodePtr node = xmlSecFindNode(xmlDocGetRootElement(doc), xmlSecNodeSignature, xmlSecDSigNs);
	if (node == NULL) { ret = -2; goto done; }
	ctx = xmlSecDSigCtxCreate(m);
	if (ctx == NULL) { ret = -3; goto done; }
	if (xmlSecDSigCtxVerify(ctx, node) < 0) { ret = -4; goto done; }
	ret = ctx->status == xmlSecDSigStatusSucceeded ? 1 : 0;
done:
	if (ctx != NULL) xmlSecDSigCtxDestroy(ctx);
	if (doc != NULL) xmlFreeDoc(doc);
	return ret;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

var initOnce sync.Once
var initErr error

// Verifier verifies enveloped signatures with libxmlsec1 against trusted PEM
// certificates. Use one Verifier per goroutine: libxmlsec1's keys manager is not
// documented as safe for concurrent verification.
type Verifier struct {
	mngr C.xmlSecKeysMngrPtr
}

// ErrFailed means libxmlsec1 processed the signature and found it invalid.
var ErrFailed = errors.New("xmlsec: signature does not verify")

// New initialises libxmlsec1 (once per process) and trusts the certificates in
// trustedPEM (CA or leaf).
func New(trustedPEM []byte) (*Verifier, error) {
	initOnce.Do(func() {
		if rc := C.amts_init(); rc != 0 {
			initErr = fmt.Errorf("xmlsec: initialisation failed (%d)", int(rc))
		}
	})
	if initErr != nil {
		return nil, initErr
	}
	cs := C.CBytes(trustedPEM)
	defer C.free(cs)
	m := C.amts_mngr((*C.char)(cs), C.int(len(trustedPEM)))
	if m == nil {
		return nil, errors.New("xmlsec: cannot load trusted certificates")
	}
	v := &Verifier{mngr: m}
	runtime.SetFinalizer(v, func(v *Verifier) { C.amts_free_mngr(v.mngr) })
	return v, nil
}

// Verify parses doc, registers root-level ID attributes and verifies its one
// ds:Signature.
func (v *Verifier) Verify(doc []byte) error {
	if len(doc) == 0 {
		return errors.New("xmlsec: empty document")
	}
	rc := C.amts_verify(v.mngr, (*C.char)(unsafe.Pointer(&doc[0])), C.int(len(doc)))
	runtime.KeepAlive(doc)
	switch {
	case rc == 1:
		return nil
	case rc == 0:
		return ErrFailed
	default:
		return fmt.Errorf("xmlsec: verification error (%d)", int(rc))
	}
}
