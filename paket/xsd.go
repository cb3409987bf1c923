package paket

import _ "embed"

// XSD is the XML Schema of Antragspaket v1, embedded so the API can serve it and tools
// can validate offline. Parse is stricter than the schema, never looser.
//
//go:embed antragspaket-v1.xsd
var XSD []byte

// XSDFileName is the name under which XSD should be published.
const XSDFileName = "antragspaket-v1.xsd"
