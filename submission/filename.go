package submission

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxFileNameBytes bounds a reply's file name (Reply.FileName): what ext4 and
// NTFS take for one name, so the applicant can save the file under it.
const MaxFileNameBytes = 255

// ErrFileName is returned by FileName for a name the gateway does not keep.
var ErrFileName = errors.New("file name not kept")

// FileName returns the file name of a reply as the gateway keeps it
// (Reply.FileName), from the name an office system or a browser sent: its last
// path element, with "/" and "\" both separators ("C:\Users\…\Bescheid.pdf",
// "/home/x/a.pdf", "..\a.pdf": "Bescheid.pdf", "a.pdf"), as browsers send an
// upload's name; blanks around it trimmed. The name goes to the portal and the
// applicant: with its path it told them the clerk's Windows account and the
// office's folders, and a ".." a careless portal could follow. "" for a name
// that is nothing but a path ("..", "/", ""), which names no file.
//
// ErrFileName for one with control or format characters — a line break or tab
// the portal would show or save, or a bidi override (U+202E) that shows
// "Bescheid‮fdp.exe" as "Bescheidexe.pdf", which no office system means to
// send —, for U+FFFE and U+FFFF (no characters XML can carry), for one that is
// not UTF-8, and for one longer than
// MaxFileNameBytes, which no file system holds. The error does not quote the
// name: a file name often names the applicant, and refusals are logged.
func FileName(sent string) (string, error) {
	if !utf8.ValidString(sent) {
		return "", fmt.Errorf("%w: the name is not UTF-8", ErrFileName)
	}
	if strings.ContainsFunc(sent, func(r rune) bool {
		return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == 0xFFFE || r == 0xFFFF
	}) {
		// U+FFFE and U+FFFF are no characters of XML 1.0: the name goes into
		// XML (the Portalverbund's Antwort/@Dateiname), where a peer's parser
		// would refuse the whole status answer for them.
		return "", fmt.Errorf("%w: the name has control or format characters", ErrFileName)
	}
	name := strings.TrimSpace(FileBase(sent))
	if len(name) > MaxFileNameBytes {
		return "", fmt.Errorf("%w: a name of %d bytes, a file name has at most %d", ErrFileName, len(name), MaxFileNameBytes)
	}
	return name, nil
}

// FileBase is the last element of a file name sent with its path, as FileName
// keeps it but unchecked: "" for a name that is nothing but a path.
func FileBase(name string) string {
	name = strings.TrimRight(name, `/\`)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	if len(name) >= 2 && name[1] == ':' && ('A' <= name[0] && name[0] <= 'Z' || 'a' <= name[0] && name[0] <= 'z') {
		// A drive-relative Windows path ("C:a.pdf"): .NET's Path.Combine
		// takes it for a rooted one and writes on that drive, as a careless
		// portal would; Path.GetFileName gives "a.pdf".
		name = name[2:]
	}
	if name == "." || name == ".." {
		return ""
	}
	return name
}
