package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/formview"
	"github.com/amtsbote/amtsbote/internal/german"
)

// IndexFormat names the version of index.json / index.xml.
const IndexFormat = "amtsbote-transfer/1"

// IndexNamespace is the XML namespace of index.xml.
const IndexNamespace = "urn:amtsbote:transfer:1"

// Index describes one case folder; it is written as index.json and, with the same
// content, as index.xml.
type Index struct {
	XMLName      xml.Name `json:"-" xml:"urn:amtsbote:transfer:1 case"`
	Format       string   `json:"format" xml:"format"`
	Case         string   `json:"case" xml:"name"`
	DeliveryID   string   `json:"delivery_id" xml:"delivery_id"`
	SubmissionID string   `json:"submission_id" xml:"submission_id"`
	// CaseID is set on a Nachreichung: the case it belongs to, the
	// submission_id of the case's first package.
	CaseID     string    `json:"case_id,omitempty" xml:"case_id,omitempty"`
	MessageID  string    `json:"message_id" xml:"message_id"`
	Sender     string    `json:"sender" xml:"sender"`
	Service    Service   `json:"service" xml:"service"`
	Place      string    `json:"place" xml:"place"`
	Office     Office    `json:"office" xml:"office"`
	ReceivedAt time.Time `json:"received_at" xml:"received_at"`
	WrittenAt  time.Time `json:"written_at" xml:"written_at"`
	Files      []File    `json:"files" xml:"files>file"`
}

// Service is the LeiKa service of the package.
type Service struct {
	LeikaKey string `json:"leika_key" xml:"leika_key"`
	Name     string `json:"name" xml:"name"`
}

// Office is the receiving office.
type Office struct {
	ID   string `json:"id" xml:"id"`
	Name string `json:"name" xml:"name"`
}

// File is one file of the case folder (the index files themselves are not listed).
type File struct {
	Path         string `json:"path" xml:"path"` // relative, "/"-separated, e.g. "anlagen/Lageplan.pdf"
	Role         string `json:"role" xml:"role"` // "package", "attachment" or "summary"
	AttachmentID string `json:"attachment_id,omitempty" xml:"attachment_id,omitempty"`
	OriginalName string `json:"original_name,omitempty" xml:"original_name,omitempty"` // the file name the portal gave
	MimeType     string `json:"mime_type" xml:"mime_type"`
	Size         int64  `json:"size" xml:"size"`
	SHA256       string `json:"sha256" xml:"sha256"`
}

// File roles.
const (
	RolePackage    = "package"
	RoleAttachment = "attachment"
	RoleSummary    = "summary"
)

// Modes of what a case consists of, before the umask. Once handed over, a case is
// the office's: its import may read it, move it (which, for a folder moved to
// another parent, needs write permission on the folder itself) or delete it (which
// needs write permission on every folder in it). So the group may do what the owner
// does, and the gateway's umask, or a default ACL on the office folder, decides what
// the import's group gets (docs/transfer.md, "Permissions"). The ledger stays the
// gateway's: 0750 and 0640.
const (
	caseDirMode  = 0o770
	caseFileMode = 0o660
)

// writeCase writes the whole case into tmp (which must not exist) and fsyncs it.
func (a *Adapter) writeCase(ctx context.Context, tmp, name, dir string, d adapters.Delivery, at time.Time) error {
	if err := os.Mkdir(tmp, caseDirMode); err != nil {
		return classify("create temporary folder", err)
	}
	ix := &Index{
		Format: IndexFormat, Case: name, DeliveryID: d.ID, SubmissionID: d.SubmissionID, CaseID: d.CaseID, MessageID: d.MessageID,
		Sender: d.Sender, Service: Service{LeikaKey: d.LeikaKey, Name: d.ServiceName},
		Office: Office{ID: d.OfficeID, Name: d.OfficeName}, ReceivedAt: d.CreatedAt.UTC(), WrittenAt: at.UTC(),
	}

	// The package: the exact signed bytes, checked against the digest the broker holds.
	if d.Package == nil {
		return &Error{Reason: ReasonSource, Err: errors.New("delivery has no package")}
	}
	rc, err := d.Package(ctx)
	if err != nil {
		return sourceErr("open package", err)
	}
	pkg, err := io.ReadAll(io.LimitReader(rc, maxPackageBytes+1))
	rc.Close()
	if err != nil {
		return sourceErr("read package", err)
	}
	if len(pkg) > maxPackageBytes {
		return adapters.Permanent("package too large for the transfer channel", nil)
	}
	sum := sha256.Sum256(pkg)
	if d.PackageSHA256 != "" && !strings.EqualFold(hex.EncodeToString(sum[:]), d.PackageSHA256) {
		return &Error{Reason: ReasonSource, Err: errors.New("package bytes do not match their digest")}
	}
	if err := writeFileSync(filepath.Join(tmp, PackageFile), pkg); err != nil {
		return classify("write package", err)
	}
	ix.Files = append(ix.Files, File{Path: PackageFile, Role: RolePackage, MimeType: "application/xml",
		Size: int64(len(pkg)), SHA256: hex.EncodeToString(sum[:])})

	// Attachments under safe, unique names.
	if len(d.Attachments) > 0 {
		ad := filepath.Join(tmp, AttachmentsDir)
		if err := os.Mkdir(ad, caseDirMode); err != nil {
			return classify("create attachments folder", err)
		}
		names := make([]string, len(d.Attachments))
		for i, at := range d.Attachments {
			names[i] = at.FileName
		}
		names = SafeNames(names)
		for i, at := range d.Attachments {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("transfer: %w", err)
			}
			size, sum, err := copyAttachment(ctx, filepath.Join(ad, names[i]), at)
			if err != nil {
				return err
			}
			ix.Files = append(ix.Files, File{Path: AttachmentsDir + "/" + names[i], Role: RoleAttachment,
				AttachmentID: at.ID, OriginalName: at.FileName, MimeType: at.MimeType, Size: size, SHA256: sum})
		}
		if err := syncDir(ad); err != nil {
			return classify("sync attachments folder", err)
		}
	}

	// The summary for people; the package decides, the PDF only shows.
	v, verr := formview.Read(pkg)
	if verr != nil {
		v = fallbackView(d)
	}
	ix.Place = v.Place
	v.CaseID = d.CaseID // a Nachreichung's summary names its case at the top, as index.json does
	pdf, err := formview.PDF(v)
	if err != nil {
		return &Error{Reason: ReasonWrite, Err: fmt.Errorf("render summary: %w", err)}
	}
	if err := writeFileSync(filepath.Join(tmp, SummaryFile), pdf); err != nil {
		return classify("write summary", err)
	}
	ps := sha256.Sum256(pdf)
	ix.Files = append(ix.Files, File{Path: SummaryFile, Role: RoleSummary, MimeType: "application/pdf",
		Size: int64(len(pdf)), SHA256: hex.EncodeToString(ps[:])})

	// The index, XML first: index.json last means "complete" to anyone peeking into a
	// temporary folder.
	xb, err := xml.MarshalIndent(ix, "", "  ")
	if err != nil {
		return &Error{Reason: ReasonWrite, Err: fmt.Errorf("encode index.xml: %w", err)}
	}
	xb = append([]byte(xml.Header), append(xb, '\n')...)
	if err := writeFileSync(filepath.Join(tmp, IndexXMLFile), xb); err != nil {
		return classify("write index.xml", err)
	}
	jb, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return &Error{Reason: ReasonWrite, Err: fmt.Errorf("encode index.json: %w", err)}
	}
	if err := writeFileSync(filepath.Join(tmp, IndexJSONFile), append(jb, '\n')); err != nil {
		return classify("write index.json", err)
	}
	if err := syncDir(tmp); err != nil {
		return classify("sync case folder", err)
	}
	return nil
}

func sourceErr(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("transfer: %s: %w", what, err)
	}
	return &Error{Reason: ReasonSource, Err: fmt.Errorf("%s: %w", what, stripPath(err))}
}

// fallbackView shows what the broker knows when the package cannot be displayed (it
// was verified at intake, so this means a format this version does not know).
func fallbackView(d adapters.Delivery) *formview.View {
	v := &formview.View{MessageID: d.MessageID, Sender: d.Sender, ServiceKey: d.LeikaKey, ServiceName: d.ServiceName}
	if !d.CreatedAt.IsZero() {
		v.Created = german.Time(d.CreatedAt) + " (Eingang)"
	}
	v.Form = []formview.Field{{Label: "Hinweis", Value: "Die Angaben des Antrags konnten hier nicht dargestellt werden; maßgeblich ist antrag.xml."}}
	for _, at := range d.Attachments {
		v.Attachments = append(v.Attachments, formview.Attachment{ID: at.ID, FileName: at.FileName,
			MimeType: at.MimeType, Size: at.Size, SHA256: at.SHA256})
	}
	return v
}

func writeFileSync(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, caseFileMode)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyAttachment streams one attachment into p, checking size and digest.
func copyAttachment(ctx context.Context, p string, at adapters.Attachment) (int64, string, error) {
	if at.Open == nil {
		return 0, "", &Error{Reason: ReasonSource, Err: fmt.Errorf("attachment %s has no content", at.ID)}
	}
	rc, err := at.Open(ctx)
	if err != nil {
		return 0, "", sourceErr("open attachment "+at.ID, err)
	}
	defer rc.Close()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, caseFileMode)
	if err != nil {
		return 0, "", classify("create attachment "+at.ID, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), &ctxReader{ctx: ctx, r: rc})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var se *srcError
		if errors.As(err, &se) {
			return 0, "", sourceErr("read attachment "+at.ID, se.err)
		}
		return 0, "", classify("write attachment "+at.ID, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if (at.SHA256 != "" && !strings.EqualFold(sum, at.SHA256)) || (at.Size > 0 && n != at.Size) {
		return 0, "", &Error{Reason: ReasonSource, Err: fmt.Errorf("attachment %s does not match its digest or size", at.ID)}
	}
	return n, sum, nil
}

// ctxReader stops a long copy when ctx ends and marks read errors as the source's.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

type srcError struct{ err error }

func (e *srcError) Error() string { return e.err.Error() }
func (e *srcError) Unwrap() error { return e.err }

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		return n, &srcError{err}
	}
	return n, err
}

// SafeNames turns attachment file names into names that are safe in a case folder on
// any file system an office may use (Linux, SMB/NTFS, macOS): no path separators or
// traversal, no control or Windows-forbidden characters (<>:"/\|?*), no reserved
// Windows device names (CON, PRN, AUX, NUL, COM0-9, LPT0-9, also with an extension),
// no leading dots (hidden files), no trailing dots or spaces, at most MaxNameBytes
// bytes with the extension kept, in Unicode NFC, and unique regardless of case and
// normalization (SMB and NTFS are case-insensitive, macOS shares normalization-
// insensitive): a clash gets " (2)", " (3)", ... before the extension.
func SafeNames(names []string) []string {
	out := make([]string, len(names))
	seen := map[string]bool{}
	for i, n := range names {
		s := SafeName(n, i+1)
		stem, ext := splitExt(s)
		cand := s
		for k := 2; seen[nameKey(cand)]; k++ {
			suffix := fmt.Sprintf(" (%d)", k)
			cand = truncBytes(stem, MaxNameBytes-len(ext)-len(suffix)) + suffix + ext
		}
		seen[nameKey(cand)] = true
		out[i] = cand
	}
	return out
}

// nameKey is what a share compares when it decides two names are the same file: NFC
// (APFS and HFS+ behind SMB ignore normalization, so composed and decomposed "Ü" are
// one name) and case folded over each character's whole simple case-fold orbit, which
// includes what NTFS's upper-casing makes equal ("σ" and "ς" are both "Σ"). A plain
// strings.ToLower kept such pairs apart, and the second O_EXCL create failed on every
// retry. Each rune is upper-cased first: the dotless "ı" upper-cases to "I" (as NTFS
// compares) but lies outside I's fold orbit, so "Işık" and "IşIk" were kept apart
// (a review). Folding wider than a given share only costs an unneeded " (2)".
func nameKey(s string) string {
	return strings.Map(func(r rune) rune { return foldRune(unicode.ToUpper(r)) }, norm.NFC.String(s))
}

// foldRune maps r to the smallest rune of its simple case-fold orbit (k, K and the
// Kelvin sign K all map to K).
func foldRune(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}

// MaxNameBytes bounds one file name (UTF-8 bytes). Windows allows 255 UTF-16 units
// per name and classic tools 260 per whole path, so names stay well below.
const MaxNameBytes = 120

// SafeName makes one file name safe and NFC (see SafeNames; uniqueness is SafeNames'
// job). n is the attachment's position, used for a name that is empty after cleaning.
func SafeName(name string, n int) string {
	// NFC, so that a name a macOS portal sent decomposed is written the way Windows
	// and Linux tools type and show it (and compares equal to it on every share).
	name = norm.NFC.String(strings.ToValidUTF8(name, "_"))
	var sb strings.Builder
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			sb.WriteByte('_')
		case strings.ContainsRune(`<>:"/\|?*`, r):
			sb.WriteByte('_')
		case r == 0xfeff || (r >= 0x200b && r <= 0x200f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			// zero-width and bidi controls would hide or reorder what people read
			sb.WriteByte('_')
		default:
			sb.WriteRune(r)
		}
	}
	s := strings.TrimLeft(sb.String(), ". ")
	s = strings.TrimRight(s, ". ")
	if s == "" || strings.Trim(s, "_") == "" {
		s = fmt.Sprintf("anlage-%d", n)
	}
	stem, ext := splitExt(s)
	if reservedName(stem) {
		stem = "_" + stem
	}
	if len(ext) > 20 { // not an extension worth keeping apart
		stem, ext = stem+ext, ""
	}
	stem = truncBytes(stem, MaxNameBytes-len(ext))
	if ext == "" { // the stem ends the name: no trailing dot or space after cutting
		stem = strings.TrimRight(stem, ". ")
	}
	if stem == "" {
		stem = fmt.Sprintf("anlage-%d", n)
	}
	return stem + ext
}

// splitExt splits at the last dot, if it is not the first character.
func splitExt(s string) (string, string) {
	i := strings.LastIndexByte(s, '.')
	// A "suffix" longer than any real extension is part of the name: keeping it whole
	// would leave no room for a " (2)" that tells two equal names apart (found by
	// FuzzSafeNames: the deduplicated name grew past MaxNameBytes).
	if i <= 0 || len(s)-i > maxExtBytes {
		return s, ""
	}
	return s[:i], s[i:]
}

// maxExtBytes is the longest suffix treated as a file extension (".tar.gz" is two).
const maxExtBytes = 16

// reservedName reports Windows device names; Windows ignores everything from the
// first dot and trailing spaces when it compares ("con.tar.gz", "NUL ").
func reservedName(stem string) bool {
	if i := strings.IndexByte(stem, '.'); i >= 0 {
		stem = stem[:i]
	}
	u := strings.ToUpper(strings.TrimRight(stem, " "))
	switch u {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$":
		return true
	}
	if len(u) >= 4 && (strings.HasPrefix(u, "COM") || strings.HasPrefix(u, "LPT")) {
		rest := u[3:]
		if len(rest) == 1 && rest[0] >= '0' && rest[0] <= '9' || rest == "¹" || rest == "²" || rest == "³" {
			return true
		}
	}
	return false
}

func truncBytes(s string, max int) string {
	if max < 1 {
		max = 1
	}
	if len(s) <= max {
		return s
	}
	b := []byte(s[:max])
	for len(b) > 0 && !utf8Valid(b) {
		b = b[:len(b)-1]
	}
	return string(b)
}

func utf8Valid(b []byte) bool { return bytes.Equal(b, bytes.ToValidUTF8(b, nil)) }
