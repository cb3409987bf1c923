package paket

import (
	"net/mail"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The field rules. Each returns "" when the value is fine, else a short reason that ends
// up in FieldError.Reason (and so in the problem+json detail): no input is echoed, so a
// reason never carries attacker-chosen bytes into logs.

var (
	reLeika    = mustPattern(`^99\d{12}$`)
	reARS      = mustPattern(`^\d{12}$`)
	reAGS      = mustPattern(`^\d{8}$`)
	rePLZ      = mustPattern(`^\d{5}$`)
	reUUID     = mustPattern(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	rePortalID = mustPattern(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	// xs:NCName restricted to ASCII: the root ID is the signature's reference target
	// and every XMLDSig tool must be able to find it.
	reNCName    = mustPattern(`^[A-Za-z_][A-Za-z0-9._-]{0,127}$`)
	reAnlageID  = mustPattern(`^[A-Za-z_][A-Za-z0-9._-]{0,63}$`)
	reSHA256    = mustPattern(`^[0-9a-fA-F]{64}$`)
	reSize      = mustPattern(`^(0|[1-9][0-9]{0,17})$`)
	reAmount    = mustPattern(`^(0|[1-9][0-9]{0,11})\.[0-9]{2}$`)
	reCurrency  = mustPattern(`^[A-Z]{3}$`)
	reCountry   = mustPattern(`^[A-Z]{2}$`)
	reForeignPC = mustPattern(`^[A-Za-z0-9][A-Za-z0-9 -]{0,11}$`)
	// RFC 6838 restricted-name for type and subtype; parameters are not allowed because
	// the transfer and mailbox channels use the value verbatim as a Content-Type.
	reMimeType = mustPattern(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)
	// RFC 2392 cid URL; the Content-ID is url-encoded, so no spaces or brackets.
	reCID = mustPattern(`^cid:[A-Za-z0-9!#$%&'*+./=?^_{|}~@-]{1,250}$`)
	// A portal mailbox reference: "postfach:" + the portal's opaque mailbox id.
	reMailbox = mustPattern(`^postfach:[A-Za-z0-9._~@:/-]{1,250}$`)
)

// Vertrauensniveau values (eIDAS levels of assurance, German names as in the
// BSI TR-03107 and the Portalverbund).
const (
	LevelLow         = "niedrig"
	LevelSubstantial = "substanziell"
	LevelHigh        = "hoch"
)

// Fachdaten formats (the Format attribute).
const (
	FormatXML  = "xml"
	FormatJSON = "json"
)

// DigestAlgorithm names the hash of Anlage/SHA256 for documentation and receipts.
const DigestAlgorithm = "SHA-256"

// checkText is the rule for free text fields (names, labels): non-empty, at most max
// runes, no control or format characters (no line breaks, no bidi overrides that make
// a name display differently from what it is), no leading or trailing space.
func checkText(s string, max int) string {
	if s == "" {
		return "must not be empty"
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	if utf8.RuneCountInString(s) > max {
		return "is too long"
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return "contains control or format characters"
		}
	}
	if strings.Trim(s, " ") != s { // tabs and line breaks are controls, see above
		return "has leading or trailing white space"
	}
	return ""
}

func checkPattern(s string, re *pattern, what string) string {
	if !re.MatchString(s) {
		return "must be " + what
	}
	return ""
}

func checkUUID(s string) string {
	if !reUUID.MatchString(s) {
		return "must be a UUID (8-4-4-4-12 hex digits)"
	}
	if strings.Trim(s, "0-") == "" {
		return "must not be the nil UUID"
	}
	return ""
}

// checkRueckkanal accepts an https URL with a host and no credentials, or a portal
// mailbox reference "postfach:<id>". Plain http is refused: answers carry personal data.
func checkRueckkanal(s string) string {
	if strings.HasPrefix(s, "postfach:") {
		return checkPattern(s, reMailbox, `"postfach:" followed by a mailbox id`)
	}
	if len(s) > 2048 || strings.ContainsAny(s, " \t\r\n") {
		return "must be an https URL or a postfach: reference"
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" || u.User != nil || u.Opaque != "" {
		return "must be an https URL without credentials or a postfach: reference"
	}
	if checkText(s, 2048) != "" {
		return "must be an https URL or a postfach: reference"
	}
	return ""
}

// checkSchemaURI wants an absolute URI (URN or URL): it names the form's schema and is
// what receivers dispatch on.
func checkSchemaURI(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > 1024 || checkText(s, 1024) != "" || strings.ContainsAny(s, " <>\"") {
		return "must be an absolute URI"
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || (u.Opaque == "" && u.Host == "" && u.Path == "") {
		return "must be an absolute URI"
	}
	return ""
}

func checkEmail(s string) string {
	if len(s) > 254 || checkText(s, 254) != "" {
		return "must be an e-mail address"
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" || !strings.Contains(s, "@") {
		return "must be a bare e-mail address (local@domain)"
	}
	return ""
}

// windowsReserved are device names that Windows (the likely other side of a transfer
// folder share) refuses or misinterprets as file names, with or without extension.
var windowsReserved = map[string]bool{
	"CON": true, "PRN": true, "AUX": true, "NUL": true,
	"COM1": true, "COM2": true, "COM3": true, "COM4": true, "COM5": true, "COM6": true, "COM7": true, "COM8": true, "COM9": true,
	"LPT1": true, "LPT2": true, "LPT3": true, "LPT4": true, "LPT5": true, "LPT6": true, "LPT7": true, "LPT8": true, "LPT9": true,
}

// checkFileName makes a Dateiname safe to use as one path element on any file system a
// channel may write to: no separators or traversal, no control/format characters, no
// characters Windows refuses, no trailing dot or space, no device names, <= 255
// characters. The limit counts characters like the XSD's maxLength, not bytes: counting
// bytes refused a 150-character Cyrillic name the published XSD accepts. Channels that
// write files shorten names to what their file system takes (transfer.SafeName).
func checkFileName(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	if utf8.RuneCountInString(s) > 255 {
		return "is longer than 255 characters"
	}
	if s == "." || s == ".." {
		return "must not be . or .."
	}
	if strings.ContainsAny(s, `/\`) {
		return "must not contain path separators"
	}
	if strings.ContainsAny(s, `<>:"|?*`) {
		return `must not contain any of < > : " | ? *`
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return "contains control or format characters"
		}
	}
	if strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") || strings.HasSuffix(s, ".") {
		return "must not start with a space or end with a space or dot"
	}
	stem, _, _ := strings.Cut(s, ".")
	if windowsReserved[strings.ToUpper(strings.TrimRight(stem, " "))] {
		return "is a reserved device name"
	}
	return ""
}

// checkPlaceConsistency: ARS and AGS share Land, Regierungsbezirk, Kreis and the
// Gemeinde digits (ARS = LL R KK VVVV GGG, AGS = LL R KK GGG). A package naming two
// different municipalities is refused rather than routed by a guess.
func checkPlaceConsistency(o Ort) string {
	if o.ARS == "" || o.AGS == "" {
		return ""
	}
	if o.ARS[:5]+o.ARS[9:] != o.AGS {
		return "ARS and AGS name different municipalities"
	}
	return ""
}
