package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing"
)

// Default service of the Amt24 example.
const exampleServiceName = "Meldung von Mängeln im Stadt- oder Gemeindegebiet"

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

var leikaRe = regexp.MustCompile(`^\d{14}$`)

// serviceKey accepts a LeiKa key or a service name known to the built-in directory.
func serviceKey(q string) (string, error) {
	if leikaRe.MatchString(q) {
		return q, nil
	}
	d, err := routing.Builtin()
	if err != nil {
		return "", err
	}
	svc, err := d.FindService(q)
	if err != nil {
		return "", err
	}
	return svc.Key, nil
}

func devPortalFiles(dataDir string) (key, cert string) {
	dir := filepath.Join(dataDir, "pki")
	return filepath.Join(dir, "portal-"+signing.DevPortalID+"-key.pem"), filepath.Join(dir, "portal-"+signing.DevPortalID+".pem")
}

func runSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "gateway base URL")
	dataDir := fs.String("data", "./data", "data folder of a development gateway (for the demo portal key and token)")
	keyFile := fs.String("key", "", "portal signing key (PEM); default: the dev portal key under -data")
	certFile := fs.String("cert", "", "portal certificate (PEM); default: the dev portal certificate under -data")
	token := fs.String("token", "", "portal bearer token for status reads (visible to every user in the process list: prefer -token-file); default: from the dev credentials")
	tokenFile := fs.String("token-file", "", "file holding the portal bearer token for status reads (one line)")
	service := fs.String("service", exampleServiceName, "LeiKa key or service name")
	place := fs.String("place", "Dresden", "place: ARS (12 digits), AGS (8), postcode (5) or name")
	sender := fs.String("sender", signing.DevPortalID, "Absender (must match the certificate)")
	msgID := fs.String("message-id", "", "NachrichtID (default: a new UUID); repeat one to see idempotency")
	bezug := fs.String("bezug", "", "send a Nachreichung: the NachrichtID of the earlier application (of the same -sender) it belongs to; it goes to the office that has that case")
	out := fs.String("out", "", "write the signed receipt to this file")
	wait := fs.Duration("wait", 0, "wait up to this long for delivery and decision, printing the event log")
	var attach stringList
	fs.Var(&attach, "attach", "attach a file (repeatable); replaces the example PDF. Files over -inline-max go as multipart/related parts, streamed")
	inlineMax := fs.Int64("inline-max", 4<<20, "largest file sent inline (base64 in the package); larger ones are sent by reference (cid:), streamed from disk")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	// A token on the command line is in the process list (ps, /proc/PID/cmdline)
	// for every user of the machine as long as submit runs, -wait included.
	switch {
	case *tokenFile != "" && *token != "":
		fmt.Fprintln(stderr, "amtsbote submit: -token and -token-file: give one")
		return 2
	case *tokenFile != "":
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintln(stderr, "amtsbote submit: -token-file:", err)
			return 2
		}
		*token = strings.TrimSpace(string(b))
	case *token != "":
		fmt.Fprintln(stderr, "amtsbote submit: warning: -token is readable by every user of this machine in the process list; use -token-file FILE")
	}
	key, err := serviceKey(*service)
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote submit:", err)
		return 1
	}
	if *token == "" {
		if dc, err := gateway.LoadDevCredentials(*dataDir); err == nil {
			*token = dc.Portals[*sender].Token
		}
	}
	// The package goes without a token (its signature is the portal's word);
	// -wait then reads the status with the portal's bearer token, which over
	// plain http to another host crosses the network in the clear — refused
	// before the package is sent, as the admin CLI refuses its token.
	if *wait > 0 && *token != "" {
		if err := clearTextAway(*url, "the portal token"); err != nil {
			fmt.Fprintf(stderr, "amtsbote submit: %v; or leave out -wait, which reads the status with it\n", err)
			return 2
		}
	}
	devKeys := *keyFile == "" || *certFile == ""
	if devKeys {
		*keyFile, *certFile = devPortalFiles(*dataDir)
	}
	signer, err := signing.LoadSigner(*keyFile, *certFile)
	if err != nil {
		// 2 as for -token-file and verify's trust files: the files that say who
		// signs are part of the invocation, and nothing was sent.
		fmt.Fprintf(stderr, "amtsbote submit: portal key: %v\n", err)
		if devKeys {
			fmt.Fprintln(stderr, "(start the gateway once with 'amtsbote serve' or run 'amtsbote keys init' to create the development keys, or give the portal's own: -key FILE -cert FILE)")
		}
		return 2
	}
	if *msgID == "" {
		*msgID = paket.NewMessageID()
	}
	p := paket.ExampleWith(key, *msgID, time.Now())
	p.Kopf.Absender = *sender
	if svc, err := serviceName(key); err == nil {
		p.Kopf.Leistung.Bezeichnung = svc
	}
	p.Kopf.Ort = placeOf(*place)
	p.Kopf.Bezug = *bezug
	var parts []portal.Part
	if len(attach) > 0 {
		p.Anlagen = nil
		for i, f := range attach {
			mt := mime.TypeByExtension(filepath.Ext(f))
			if mt == "" {
				mt = "application/octet-stream"
			}
			if i := strings.IndexByte(mt, ';'); i > 0 {
				mt = mt[:i]
			}
			id := fmt.Sprintf("anlage-%d", i+1)
			info, err := os.Stat(f)
			if err != nil {
				fmt.Fprintln(stderr, "amtsbote submit:", err)
				return 1
			}
			if info.Size() > *inlineMax {
				// By reference: hashed in a first pass, streamed in the second, never
				// read whole into memory.
				a, part, err := portal.FileAnlage(id, f, mt)
				if err != nil {
					fmt.Fprintln(stderr, "amtsbote submit:", err)
					return 1
				}
				p.Anlagen = append(p.Anlagen, a)
				parts = append(parts, part)
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				fmt.Fprintln(stderr, "amtsbote submit:", err)
				return 1
			}
			p.Anlagen = append(p.Anlagen, paket.NewAnlage(id, filepath.Base(f), mt, b))
		}
	}
	c := &portal.Client{BaseURL: *url, Signer: signer, Token: *token}
	var res *portal.Result
	if len(parts) > 0 {
		res, err = c.SubmitParts(ctx, p, parts)
	} else {
		res, err = c.Submit(ctx, p)
	}
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote submit:", err)
		return 1
	}
	if !res.Accepted() {
		printRefusal(stderr, res)
		return 1
	}
	state := "accepted"
	if res.Duplicate {
		state = "already accepted earlier (same NachrichtID): first receipt returned"
	}
	fmt.Fprintf(stdout, "%d %s\n  submission: %s\n  NachrichtID: %s\n  status: %s%s\n", res.Status, state, res.SubmissionID, *msgID, strings.TrimRight(*url, "/"), res.Location)
	if *out != "" {
		if err := os.WriteFile(*out, res.Receipt, 0o644); err != nil {
			fmt.Fprintln(stderr, "amtsbote submit:", err)
			return 1
		}
		fmt.Fprintf(stdout, "  receipt: %s\n%s", *out, receiptHint(res.Receipt, *dataDir, *out, devKeys))
	}
	if *wait > 0 {
		return waitAndPrint(ctx, c, res.SubmissionID, *wait, stdout, stderr)
	}
	return 0
}

// printRefusal says why the gateway refused, with what the problem's extension
// members add: which field, which limit, and for an ambiguous place the candidates
// to choose from (their ARS goes into -place).
func printRefusal(w io.Writer, res *portal.Result) {
	p := res.Problem
	fmt.Fprintf(w, "refused: %d %s\n  %s\n", res.Status, p.Type, p.Detail)
	if f, ok := p.Extra["field"].(string); ok {
		fmt.Fprintf(w, "  field: %s\n", f)
	}
	l, _ := p.Extra["limit"].(string)
	m, hasMax := p.Extra["max"].(float64)
	switch {
	case l != "" && hasMax:
		fmt.Fprintf(w, "  limit: %s (max %.0f)\n", l, m)
	case l != "":
		fmt.Fprintf(w, "  limit: %s\n", l)
	case hasMax:
		fmt.Fprintf(w, "  max: %.0f\n", m)
	}
	if p.Type == problem.TypeTooLarge {
		fmt.Fprintln(w, "  (a big file goes by reference, outside the XML: lower -inline-max)")
	}
	if cs := portal.Candidates(p); len(cs) > 0 {
		fmt.Fprintln(w, "  choose one with -place ARS:")
		for _, c := range cs {
			if c.Kreis != "" {
				fmt.Fprintf(w, "    %s  %s (%s)\n", c.ARS, c.Name, c.Kreis)
			} else {
				fmt.Fprintf(w, "    %s  %s\n", c.ARS, c.Name)
			}
		}
	}
	if ra := res.RetryAfter; ra != "" {
		fmt.Fprintf(w, "  retry after %s s with the same NachrichtID (-message-id)\n", ra)
	}
}

func serviceName(key string) (string, error) {
	d, err := routing.Builtin()
	if err != nil {
		return "", err
	}
	s, ok := d.Service(key)
	if !ok {
		return "", fmt.Errorf("unknown service %s", key)
	}
	return s.Name, nil
}

var digitsRe = regexp.MustCompile(`^\d+$`)

func placeOf(q string) paket.Ort {
	q = strings.TrimSpace(q)
	if digitsRe.MatchString(q) {
		switch len(q) {
		case 12:
			return paket.Ort{ARS: q}
		case 8:
			return paket.Ort{AGS: q}
		case 5:
			return paket.Ort{PLZ: q}
		}
	}
	return paket.Ort{Name: q}
}

func waitAndPrint(ctx context.Context, c *portal.Client, id string, d time.Duration, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	seen := 0
	for {
		v, err := c.Status(ctx, id)
		if err != nil {
			fmt.Fprintln(stderr, "amtsbote submit: status:", err)
			if re := (*portal.ReadError)(nil); errors.As(err, &re) && re.Problem.Status == http.StatusUnauthorized {
				fmt.Fprintln(stderr, "  (the package was accepted; reading its status needs the portal's token from the gateway's configuration: -token-file; without it the one in the development credentials under -data is used)")
			}
			return 1
		}
		for _, e := range v.Events[seen:] {
			fmt.Fprintf(stdout, "  %s  %-15s %s %s\n", e.At.Local().Format("15:04:05.000"), e.Type, e.Channel, e.Detail)
		}
		seen = len(v.Events)
		if v.State.Final() {
			return 0
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(stdout, "  (still %s after %s)\n", v.State, d)
			return 0
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// shellQuote makes a hint copy-pasteable: a path with spaces or shell characters is
// single-quoted.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// receiptHint says how to check the receipt written to out, by the command that
// verifies this receipt. It was chosen by where the portal key came from: with
// the development portal key under -data it named `verify -data DIR`, whose trust
// store pins the development gateway's certificate, also when the gateway signed
// with its operator's key (a staging gateway trusting the development portals),
// and that command said "NOT VERIFIED: untrusted signer". Now the receipt's own
// certificate decides: the development trust store under dataDir when it verifies
// the receipt; else the development CA under dataDir when it issued the
// certificate; else the operator's file, named by the certificate's subject and
// issuer (read from the receipt's KeyInfo for the hint only: the trust is the
// file the reader passes).
func receiptHint(receipt []byte, dataDir, out string, devKeys bool) string {
	devTrust := filepath.Join(dataDir, "pki", "trust")
	if ts, err := signing.LoadTrustStore(devTrust); err == nil {
		if _, err := signing.VerifyOffline(receipt, ts, signing.VerifyOptions{}); err == nil {
			return fmt.Sprintf("  check it with: amtsbote verify -data %s %s\n", shellQuote(dataDir), shellQuote(out))
		}
	}
	leaf, _ := federation.SignerCertificate(receipt) // unverified: for the hint only
	devCA := filepath.Join(dataDir, "pki", "dev-ca.pem")
	if leaf != nil {
		if b, err := os.ReadFile(devCA); err == nil {
			if cas, err := signing.ParseCertificatesPEM(b); err == nil && len(cas) > 0 && leaf.CheckSignatureFrom(cas[0]) == nil {
				return fmt.Sprintf("  check it with: amtsbote verify -cert %s %s\n    (the development CA under -data issued the gateway's certificate %q)\n",
					shellQuote(devCA), shellQuote(out), leaf.Subject.CommonName)
			}
		}
	}
	hint := fmt.Sprintf("  check it with: amtsbote verify -cert GATEWAY-CERT.pem %s\n", shellQuote(out))
	if leaf != nil {
		hint += fmt.Sprintf("    GATEWAY-CERT.pem: the gateway's certificate (%q), or that of the CA that issued it (%q), from the gateway's operator",
			leaf.Subject.CommonName, leaf.Issuer.CommonName)
	} else {
		hint += "    GATEWAY-CERT.pem: the gateway's certificate, or that of the CA that issued it, from the gateway's operator"
	}
	if devKeys {
		// The portal key came from the development PKI, but the gateway's receipt
		// did not: say why -data is not the answer.
		hint += "; this gateway signs with its operator's key, not the development one under -data"
	}
	return hint + "\n"
}
