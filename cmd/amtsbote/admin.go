package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// adminVerbs are the verbs of `amtsbote admin`: the admin API for the person on
// call, who would otherwise assemble curl lines with a bearer token at night.
// Each is one or a few requests to /v1/admin; the answer is printed as a table
// (or with -json as the API gave it).
var adminVerbs = []struct{ name, args, use string }{
	{"held", "[-office ID] [-from T] [-to T]", "list the packages that wait for a person (dead letters), oldest first"},
	{"show", "ID", "one submission: where it is, its channels and its whole event log with the receivers' notes"},
	{"find", "SENDER NACHRICHTID", "show the submission a portal (or, forwarded, another state's portal) sent with that NachrichtID"},
	{"replay", "ID... | -office ID | -from T -to T", "queue held packages again at their office's first channel (after mending the cause)"},
	{"erase", "-operator NAME [-note TEXT] ID", "remove one case's package, attachments and replies now, on request (record, history and receipts stay)"},
	{"list", "-state STATE", "submissions in one state (at most 1000)"},
	{"offices", "", "what waits for which office (queued, retrying, handed over, held), the longest waiting first"},
	{"undecided", "[-office ID]", "cases an office took by its system or the mailbox and has not decided, oldest first, and how many per office"},
	{"endpoints", "", "circuit breakers and channels disabled after a 410 Gone"},
	{"enable", "OFFICE CHANNEL", "enable a disabled channel again"},
	{"reload", "", "re-read the directory files and the trust store (in a cluster on every gateway, each listed)"},
}

// adminVerbNames lists the verbs for the overview of `amtsbote help`, from the
// same table as the verbs' own usage: written out by hand there it had lost
// erase and offices, and the person on call reading the overview did not
// learn of them.
func adminVerbNames() string {
	names := make([]string, len(adminVerbs))
	for i, v := range adminVerbs {
		names[i] = v.name
	}
	return strings.Join(names, " | ")
}

func adminUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: amtsbote admin [-config FILE] [-url URL] [-json] <verb> [args]")
	fmt.Fprintln(w, "\nThe admin token comes from the configuration (admin_token, AMTSBOTE_ADMIN_TOKEN)")
	fmt.Fprintln(w, "or, on the development PKI, from <data_dir>/dev-credentials.yaml; never from the")
	fmt.Fprintln(w, "command line, where other users of the machine could read it.")
	fmt.Fprintln(w, "\nverbs:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range adminVerbs {
		fmt.Fprintf(tw, "  %s %s\t%s\n", v.name, v.args, v.use)
	}
	tw.Flush()
}

// errAdminUsage marks a command line that names no verb or wrong arguments (exit 2).
var errAdminUsage = errors.New("usage")

// usagef is errAdminUsage with the reason, which runAdmin prints before the
// usage: the usage alone left the operator to guess which part was wrong.
func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errAdminUsage}, args...)...)
}

// parseFlagsAnywhere parses args with fs, taking flags after the arguments as
// well (the flag package stops at the first argument): `erase ID -operator NAME`
// read -operator as a second id. An argument "--" ends the flags as usual.
func parseFlagsAnywhere(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, loadConfig := configFlags("admin", stderr, "the gateway's configuration (admin token, public URL, data folder)")
	fs.Usage = func() { adminUsage(stderr); fmt.Fprintln(stderr, "\nflags:"); fs.PrintDefaults() }
	base := fs.String("url", "", "the gateway's base URL (default: public_url of the configuration)")
	raw := fs.Bool("json", false, "print the API's JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if fs.NArg() == 0 {
		adminUsage(stderr)
		return 2
	}
	verb, rest := fs.Arg(0), fs.Args()[1:]
	// Before the configuration and the token: a mistyped verb is told as such.
	if !slices.ContainsFunc(adminVerbs, func(v struct{ name, args, use string }) bool { return v.name == verb }) {
		fmt.Fprintf(stderr, "amtsbote admin: no verb %q\n\n", verb)
		adminUsage(stderr)
		return 2
	}
	if len(rest) > 0 && isHelp(rest[0]) {
		// Help needs no gateway and no token (without one, `admin erase -h` said
		// "no admin token"): the verbs with flags print theirs before any request,
		// the others have their line in the usage.
		switch verb {
		case "held", "replay", "erase", "list", "undecided":
			_ = (&adminClient{}).run(ctx, verb, rest, stdout, stderr)
		default:
			adminUsage(stderr)
		}
		return 0
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote admin:", err)
		return 2
	}
	c, err := newAdminClient(cfg, *base)
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote admin:", err)
		return 2
	}
	c.raw = *raw
	err = c.run(ctx, verb, rest, stdout, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0 // the verb's flags are printed, as asked
	case errors.Is(err, errAdminUsage):
		if reason, ok := strings.CutPrefix(err.Error(), errAdminUsage.Error()+": "); ok {
			fmt.Fprintf(stderr, "amtsbote admin %s: %s\n\n", verb, reason)
		}
		adminUsage(stderr)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "amtsbote admin "+verb+":", err)
		return 1
	}
	return 0
}

// adminClient calls the admin API of one gateway.
type adminClient struct {
	base, token string
	http        *http.Client
	raw         bool
}

// newAdminClient finds the gateway's address and the admin token: url, or the
// configuration's public_url; admin_token, or the development credentials in
// the data folder.
func newAdminClient(cfg config.Config, base string) (*adminClient, error) {
	if base == "" {
		base = cfg.PublicURL
	}
	// Trimmed as the gateway trims it (api.NewClients): a token from a secret file
	// ends in a newline, and "Bearer T\n" is no valid header value.
	token := strings.TrimSpace(cfg.AdminToken)
	if token == "" {
		if dc, err := gateway.LoadDevCredentials(cfg.DataDir); err == nil {
			token = strings.TrimSpace(dc.AdminToken)
		}
	}
	if token == "" {
		return nil, fmt.Errorf("no admin token: set admin_token in the configuration (or AMTSBOTE_ADMIN_TOKEN); on the development PKI, point -config or -data at the gateway's data folder")
	}
	if err := clearTextAway(base, "the admin token"); err != nil {
		return nil, err
	}
	return &adminClient{base: strings.TrimSuffix(base, "/"), token: token, http: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// clearTextAway refuses a plain http:// base on another host for a request
// that carries what (a token; for `store backup`, the whole store too): it
// would cross the network in the clear, to anyone on the way. The gateway's
// own host (loopback) is fine, and is where the tools usually run; elsewhere
// the gateway is reached by https.
func clearTextAway(base, what string) error {
	if host, ok := config.PlainHTTPAway(base); ok {
		return fmt.Errorf("refusing to send %s in the clear to %s: use an https:// URL, or run this on the gateway's host with -url http://127.0.0.1:PORT", what, host)
	}
	return nil
}

// apiError is a problem+json answer, or any other answer that is not a success.
type apiError struct {
	Status int
	Type   string
	Detail string
	ID     string
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("the gateway answered %d", e.Status)
	if e.Type != "" {
		s += " (" + e.Type[strings.LastIndex(e.Type, "/")+1:] + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// refusal reads a non-2xx answer of an admin request (a problem document, or
// whatever else came) for the person at the shell; `store backup` reads its
// refusals the same way.
func refusal(status int, body []byte) *apiError {
	e := &apiError{Status: status}
	var p struct {
		Type, Detail, ID string
	}
	if json.Unmarshal(body, &p) == nil {
		e.Type, e.Detail, e.ID = p.Type, p.Detail, p.ID
	} else {
		e.Detail = strings.TrimSpace(string(body[:min(len(body), 300)]))
	}
	if status == http.StatusUnauthorized {
		e.Detail += " (is the admin token the one this gateway has?)"
	}
	return e
}

// do sends one request and decodes a JSON answer into out; the raw body is
// returned for -json.
// print is do for a command that shows the answer: it is done when the call
// failed or, with -json, once the answer is written as it came; otherwise the
// command formats out itself.
func (c *adminClient) print(ctx context.Context, method, path string, body, out any, stdout io.Writer) (done bool, err error) {
	b, err := c.do(ctx, method, path, body, out)
	if err != nil {
		return true, err
	}
	if c.raw {
		_, err = stdout.Write(b)
		return true, err
	}
	return false, nil
}

func (c *adminClient) do(ctx context.Context, method, path string, body any, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		return b, refusal(resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return b, fmt.Errorf("the answer of %s is not what this version reads: %w", c.base, err)
		}
	}
	return b, nil
}

func (c *adminClient) run(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	switch verb {
	case "held":
		return c.held(ctx, args, stdout, stderr)
	case "show":
		if len(args) != 1 {
			return usagef("show takes one submission id, not %d arguments", len(args))
		}
		return notFound(c.show(ctx, "/v1/admin/submissions/"+url.PathEscape(args[0]), stdout), "no submission %s on this gateway", args[0])
	case "find":
		if len(args) != 2 {
			return usagef("find takes SENDER NACHRICHTID, not %d arguments", len(args))
		}
		return notFound(c.show(ctx, wire.AdminMessagePath(args[0], args[1]), stdout), "no package of %q with NachrichtID %q on this gateway", args[0], args[1])
	case "replay":
		return c.replay(ctx, args, stdout, stderr)
	case "list":
		return c.list(ctx, args, stdout, stderr)
	case "erase":
		return c.erase(ctx, args, stdout, stderr)
	case "undecided":
		return c.undecided(ctx, args, stdout, stderr)
	case "offices":
		if len(args) != 0 {
			return usagef("offices takes no arguments, got %q", args)
		}
		return c.offices(ctx, stdout)
	case "endpoints":
		if len(args) != 0 {
			return usagef("endpoints takes no arguments, got %q", args)
		}
		return c.endpoints(ctx, stdout)
	case "enable":
		if len(args) != 2 {
			return usagef("enable takes OFFICE CHANNEL, got %q", args)
		}
		return notFound(c.enable(ctx, args[0], args[1], stdout),
			"nothing to enable: %s %s is not disabled and has no breaker here (`amtsbote admin endpoints` lists those that have)", args[0], args[1])
	case "reload":
		if len(args) != 0 {
			return usagef("reload takes no arguments, got %q", args)
		}
		return c.reload(ctx, stdout)
	}
	return usagef("no verb %q", verb)
}

// notFound puts what a verb looked for before a 404 of the admin API, whose
// detail is "no such resource" for every kind of thing: the person on call
// learns whether the id, the sender's message or the endpoint was not found.
func notFound(err error, format string, args ...any) error {
	var e *apiError
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
	}
	return err
}

// windowFlags are -office, -from and -to of held and replay.
func windowFlags(name string, stderr io.Writer) (*flag.FlagSet, *string, *string, *string) {
	fs := flag.NewFlagSet("admin "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	office := fs.String("office", "", "only this office's")
	from := fs.String("from", "", "held at or after this time (RFC 3339)")
	to := fs.String("to", "", "held before this time (RFC 3339)")
	return fs, office, from, to
}

type deadLetter struct {
	ID         string    `json:"id"`
	Office     string    `json:"office"`
	Channel    string    `json:"channel"`
	Reason     string    `json:"reason"`
	Note       string    `json:"note"`
	Attempts   int       `json:"attempts"`
	ReceivedAt time.Time `json:"receivedAt"`
	HeldAt     time.Time `json:"heldAt"`
}

// parseError is what a verb returns when its flags do not parse: the flag package
// printed the reason and the verb's flags already; -h asked for just that.
func parseError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return errAdminUsage
}

func (c *adminClient) held(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, office, from, to := windowFlags("held", stderr)
	if err := fs.Parse(args); err != nil {
		return parseError(err)
	}
	if fs.NArg() != 0 {
		return usagef("held takes no arguments besides -office, -from and -to, got %q", fs.Args())
	}
	q := url.Values{}
	for k, v := range map[string]string{"office": *office, "from": *from, "to": *to} {
		if v != "" {
			q.Set(k, v)
		}
	}
	path := "/v1/admin/dead-letters?" + q.Encode()
	all, done, err := rowsOrRaw[deadLetter](ctx, c, stdout, path, "deadLetters")
	if err != nil || done {
		return err
	}
	if !printRows(stdout, all, "no package waits for a person",
		"HELD SINCE\tID\tOFFICE\tCHANNEL\tATTEMPTS\tREASON", func(d deadLetter) string {
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%s", d.HeldAt.Local().Format("2006-01-02 15:04"), d.ID, d.Office, d.Channel, d.Attempts, oneLine(d.Reason, 80))
		}) {
		return nil
	}
	fmt.Fprintf(stdout, "%d held. `amtsbote admin show ID` shows what the receiver said; mend the cause, then `amtsbote admin replay`.\n", len(all))
	return nil
}

// show prints the submission the admin API's path names (by its id, or by its
// sender and NachrichtID).
func (c *adminClient) show(ctx context.Context, path string, stdout io.Writer) error {
	var v api.AdminSubmission
	if done, err := c.print(ctx, http.MethodGet, path, nil, &v, stdout); done {
		return err
	}
	s := v.Submission
	if s == nil {
		return errors.New("the answer names no submission")
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("submission", s.ID)
	row("state", string(s.State))
	row("office", s.OfficeID+" ("+s.OfficeName+")")
	row("service", s.LeikaKey+" "+s.ServiceName)
	row("from", s.Sender+", message "+s.MessageID)
	row("received", s.ReceivedAt.Local().Format(time.RFC3339))
	var chans []string
	for i, t := range s.Targets {
		mark := ""
		if i == s.TargetIndex {
			mark = " (current)"
		}
		chans = append(chans, t.Channel+mark)
	}
	row("channels", strings.Join(chans, ", "))
	if s.TotalAttempts > 0 {
		row("attempts", fmt.Sprint(s.TotalAttempts))
	}
	if s.Forward != nil || s.State == submission.StateForwarded {
		row("forwarded", "to another state's gateway")
	}
	if s.CaseID != "" {
		row("nachreichung to", s.CaseID)
	}
	row("nachreichungen", strings.Join(v.FollowUps, ", "))
	if len(s.WithdrawalsOwed) > 0 {
		// An erasure or a takeover is not complete while a copy waits in an
		// office's share: the person on call must see it without -json.
		row("withdrawal owed", "channel "+strings.Join(s.WithdrawalsOwed, ", ")+": a copy may still wait for the office; the gateway asks its share again until it answers")
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\nevents:")
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, e := range v.Events {
		what := e.Detail
		if e.Actor != "" {
			what = strings.TrimSpace(what + " [by " + e.Actor + "]")
		}
		if e.Note != "" {
			// The receiver's own words on a failure, the operator's on an erasure:
			// operators only, never shown to portals.
			what = strings.TrimSpace(what + " — note: " + e.Note)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Type, e.Channel, oneLine(what, 160))
	}
	return tw.Flush()
}

func (c *adminClient) replay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, office, from, to := windowFlags("replay", stderr)
	if err := fs.Parse(args); err != nil {
		return parseError(err)
	}
	body := map[string]any{}
	if ids := fs.Args(); len(ids) > 0 {
		body["ids"] = ids
	}
	for k, v := range map[string]string{"office": *office, "from": *from, "to": *to} {
		if v != "" {
			body[k] = v
		}
	}
	if len(body) == 0 {
		return usagef("name ids, -office or a window -from/-to")
	}
	var res struct {
		Replayed int `json:"replayed"`
		Skipped  []struct {
			ID     string `json:"id"`
			State  string `json:"state"`
			Reason string `json:"reason"`
		} `json:"skipped"`
	}
	b, err := c.do(ctx, http.MethodPost, "/v1/admin/dead-letters/replay", body, &res)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.ID != "" {
			return fmt.Errorf("%w (at id %s)", err, ae.ID)
		}
		return err
	}
	if c.raw {
		_, err := stdout.Write(b)
		return err
	}
	fmt.Fprintf(stdout, "replayed %d\n", res.Replayed)
	for _, k := range res.Skipped {
		if k.Reason != "" {
			fmt.Fprintf(stdout, "skipped %s: %s, %s\n", k.ID, k.State, k.Reason)
			continue
		}
		fmt.Fprintf(stdout, "skipped %s: %s, no longer held\n", k.ID, k.State)
	}
	return nil
}

// erase removes one case's bytes at once (GDPR Art. 17). The operator's name is
// required here: the event log is the record of who ordered it.
func (c *adminClient) erase(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin erase", flag.ContinueOnError)
	fs.SetOutput(stderr)
	operator := fs.String("operator", "", "who orders the erasure (recorded in the case's history)")
	note := fs.String("note", "", "why, e.g. the request's reference (operators only)")
	ids, err := parseFlagsAnywhere(fs, args)
	switch {
	case err != nil:
		return parseError(err)
	case len(ids) != 1:
		return usagef("erase takes one submission id, got %q", ids)
	case strings.TrimSpace(*operator) == "":
		return usagef("erase needs -operator NAME: who orders the erasure, recorded in the case's history")
	}
	var res struct {
		erased
		// FollowUps are the case's Nachreichungen, each erased with it or
		// with the problem that kept it.
		FollowUps []struct {
			erased
			Problem *struct {
				Type   string `json:"type"`
				Status int    `json:"status"`
				Detail string `json:"detail"`
			} `json:"problem"`
		} `json:"followUps"`
	}
	if done, err := c.print(ctx, http.MethodPost, "/v1/admin/submissions/"+url.PathEscape(ids[0])+"/erase",
		map[string]string{"operator": *operator, "note": *note}, &res, stdout); done {
		var answered *apiError
		if err != nil && !errors.As(err, &answered) {
			// No answer (a timeout, a dropped connection): on a big store the
			// gateway's search for shared files can outlast the wait, and it
			// finishes an erasure whose client left.
			return fmt.Errorf("%w\nthe gateway may have erased it all the same: `amtsbote admin show %s` lists bytes_removed in its history if so; erasing again is safe", err, ids[0])
		}
		return notFound(err, "no submission %s on this gateway", ids[0])
	}
	unreached := res.say(stdout, "")
	left := 0
	for _, fu := range res.FollowUps {
		if fu.Problem != nil {
			left++
			fmt.Fprintf(stdout, "Nachreichung %s NOT erased: %s (%d %s)\n", fu.ID, fu.Problem.Detail, fu.Problem.Status, fu.Problem.Type)
			continue
		}
		unreached += fu.say(stdout, "Nachreichung ")
	}
	if left > 0 {
		return fmt.Errorf("%d Nachreichungen of %s are not erased yet: run the same erase again once they are delivered or held (what is erased stays so)", left, res.ID)
	}
	if unreached > 0 {
		// The bytes are gone from the gateway, but a copy may still wait in the
		// office's share: the erasure is not complete, and a script must not
		// take it for done.
		return fmt.Errorf("%d copies of %s waiting for the office could not be withdrawn yet (each line above says what comes next; `amtsbote admin show %s` lists a withdrawal once done, and the same erase again asks at once; what is erased stays so)", unreached, res.ID, res.ID)
	}
	return nil
}

// erased is what the admin API's erasure did to one case.
type erased struct {
	ID             string     `json:"id"`
	State          string     `json:"state"`
	BytesRemovedAt *time.Time `json:"bytesRemovedAt"`
	AlreadyRemoved bool       `json:"alreadyRemoved"`
	BlobsDeleted   int        `json:"blobsDeleted"`
	BlobsLeft      int        `json:"blobsLeft"`
	// Withdrawals is what became of the case's copy waiting for the office
	// outside the gateway (a case folder in its transfer folder).
	Withdrawals []struct {
		Channel          string `json:"channel"`
		Outcome          string `json:"outcome"`
		Reference        string `json:"reference"`
		LeftoversRemoved bool   `json:"leftoversRemoved"`
		Detail           string `json:"detail"`
		AskedAgain       bool   `json:"askedAgain"`
	} `json:"withdrawals"`
	// ForwardedTo names the peer gateway that has the case, which this
	// erasure does not reach.
	ForwardedTo *struct {
		Gateway         string `json:"gateway"`
		SubmissionID    string `json:"submissionId"`
		ReceiverGateway string `json:"receiverGateway"`
	} `json:"forwardedTo"`
}

// say writes what the erasure did, the case named with what in front, and
// returns how many of its copies outside the gateway could not be withdrawn.
func (e erased) say(w io.Writer, what string) (unreached int) {
	if e.AlreadyRemoved {
		fmt.Fprintf(w, "%s%s: its bytes were removed before; %d files deleted now\n", what, e.ID, e.BlobsDeleted)
	} else {
		fmt.Fprintf(w, "%s%s erased: %d files deleted (a file another case shares stays until that case goes); record, history and receipts stay. Backups taken before still hold it.\n", what, e.ID, e.BlobsDeleted)
		if e.BlobsLeft > 0 {
			fmt.Fprintf(w, "%d files were written in the last 15 minutes and stay for now (a request under way may be about to use the same content); the retention's hourly sweep removes them once they are an hour old.\n", e.BlobsLeft)
		}
	}
	for _, wd := range e.Withdrawals {
		ref := ""
		if wd.Reference != "" {
			ref = " " + wd.Reference
		}
		switch wd.Outcome {
		case "removed":
			if wd.Reference == "" {
				fmt.Fprintf(w, "%s%s: a failed attempt's leftover on channel %s removed (the office never had the case there)\n", what, e.ID, wd.Channel)
			} else {
				fmt.Fprintf(w, "%s%s: case folder%s removed from channel %s before the office took it; the office does not get it\n", what, e.ID, ref, wd.Channel)
			}
		case "removedBefore":
			fmt.Fprintf(w, "%s%s: case folder%s on channel %s was removed before (by an earlier erasure, or by the gateway after a clerk's takeover)\n", what, e.ID, ref, wd.Channel)
		case "taken":
			fmt.Fprintf(w, "%s%s: the office had taken case folder%s from channel %s before: its copy is the office's, tell the office if it must erase it too\n", what, e.ID, ref, wd.Channel)
		case "none":
			// Nothing of it there: nothing to say.
		default:
			unreached++
			next := "the gateway asks the share again until it answers"
			if !wd.AskedAgain {
				next = "the gateway cannot reach it: the office's IT has to take it out of the share"
			}
			fmt.Fprintf(w, "%s%s: case folder on channel %s NOT withdrawn: %s; %s\n", what, e.ID, wd.Channel, wd.Detail, next)
		}
	}
	if f := e.ForwardedTo; f != nil {
		on := ""
		if f.ReceiverGateway != "" {
			on = ", which forwarded it on to gateway " + f.ReceiverGateway
		}
		fmt.Fprintf(w, "%s%s was forwarded to gateway %s%s: this erasure does not reach it there; ask that gateway's operator to erase its submission %s\n",
			what, e.ID, f.Gateway, on, f.SubmissionID)
	}
	return unreached
}

func (c *adminClient) list(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", "", "the state: "+strings.Join(stateNames(), ", "))
	if err := fs.Parse(args); err != nil {
		return parseError(err)
	}
	if fs.NArg() != 0 || *state == "" {
		return usagef("list takes -state STATE and nothing else")
	}
	var v struct {
		Submissions []struct {
			ID         string    `json:"id"`
			State      string    `json:"state"`
			Office     string    `json:"office"`
			ReceivedAt time.Time `json:"receivedAt"`
			Attempts   int       `json:"attempts"`
		} `json:"submissions"`
		Complete *bool `json:"complete"` // nil from a gateway before it
	}
	if done, err := c.print(ctx, http.MethodGet, "/v1/admin/submissions?state="+url.QueryEscape(*state), nil, &v, stdout); done {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RECEIVED\tID\tOFFICE\tATTEMPTS")
	for _, s := range v.Submissions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", s.ReceivedAt.Local().Format("2006-01-02 15:04"), s.ID, s.Office, s.Attempts)
	}
	tw.Flush()
	more := ""
	if v.Complete != nil && !*v.Complete || v.Complete == nil && len(v.Submissions) == 1000 {
		more = fmt.Sprintf(" (the first %d; more are %s)", len(v.Submissions), *state)
	}
	fmt.Fprintf(stdout, "%d %s%s\n", len(v.Submissions), *state, more)
	return nil
}

func stateNames() []string {
	var out []string
	for _, s := range submission.States() {
		out = append(out, string(s))
	}
	return out
}

func (c *adminClient) offices(ctx context.Context, stdout io.Writer) error {
	var v struct {
		Offices  []broker.OfficeBacklog `json:"offices"`
		Waiting  int                    `json:"waiting"`
		Complete bool                   `json:"complete"`
	}
	if done, err := c.print(ctx, http.MethodGet, "/v1/admin/offices", nil, &v, stdout); done {
		return err
	}
	if !printRows(stdout, v.Offices, "nothing waits: every package has reached its office's system or a person",
		"WAITING SINCE\tOFFICE\tQUEUED\tRETRYING\tHANDED OVER\tHELD\tNAME", func(o broker.OfficeBacklog) string {
			return fmt.Sprintf("%s\t%s\t%d\t%d\t%d\t%d\t%s", o.WaitingSince.Local().Format("2006-01-02 15:04"), o.Office, o.Queued, o.Retrying, o.HandedOver, o.Held, oneLine(o.Name, 60))
		}) {
		return nil
	}
	fmt.Fprintln(stdout, backlogSentence(v.Waiting, len(v.Offices), v.Complete))
	return nil
}

// backlogSentence is the line under `admin offices`' table: how many packages
// wait for how many offices, and where to look next.
func backlogSentence(waiting, offices int, complete bool) string {
	verb, more := "wait", ""
	if waiting == 1 {
		verb = "waits"
	}
	if !complete {
		more = " (the first read; more wait)"
	}
	return fmt.Sprintf("%s %s for %s%s. Retrying: `amtsbote admin endpoints`; handed over: the office has not imported or opened them; held: `amtsbote admin held`.", counted(waiting, "package"), verb, counted(offices, "office"), more)
}

// undecided lists the cases that await their office's decision, every page,
// and then each office with its count and oldest delivery: whom to call, about
// which cases.
func (c *adminClient) undecided(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin undecided", flag.ContinueOnError)
	fs.SetOutput(stderr)
	office := fs.String("office", "", "only this office's")
	if err := fs.Parse(args); err != nil {
		return parseError(err)
	}
	if fs.NArg() != 0 {
		return usagef("undecided takes no arguments besides -office, got %q", fs.Args())
	}
	q := url.Values{}
	if *office != "" {
		q.Set("office", *office)
	}
	path := "/v1/admin/undecided?" + q.Encode()
	all, done, err := rowsOrRaw[broker.UndecidedCase](ctx, c, stdout, path, "undecided")
	if err != nil || done {
		return err
	}
	if !printRows(stdout, all, "no case waits for its office's decision",
		"DELIVERED	ID	OFFICE	TAKEN BY	RECEIVED", func(u broker.UndecidedCase) string {
			return fmt.Sprintf("%s	%s	%s	%s	%s", u.DeliveredAt.Local().Format("2006-01-02 15:04"), u.ID, u.Office, u.Channel, u.ReceivedAt.Local().Format("2006-01-02 15:04"))
		}) {
		return nil
	}
	type perOffice struct {
		office, name string
		n            int
		oldest       time.Time
	}
	by := map[string]*perOffice{}
	for _, u := range all {
		o := by[u.Office]
		if o == nil {
			o = &perOffice{office: u.Office, name: u.Name, oldest: u.DeliveredAt}
			by[u.Office] = o
		}
		o.n++
		if u.DeliveredAt.Before(o.oldest) {
			o.oldest = u.DeliveredAt
		}
	}
	offices := slices.SortedFunc(maps.Values(by), func(a, b *perOffice) int {
		if c := a.oldest.Compare(b.oldest); c != 0 {
			return c
		}
		return strings.Compare(a.office, b.office)
	})
	fmt.Fprintln(stdout)
	printRows(stdout, offices, "", "OLDEST DELIVERED	OFFICE	UNDECIDED	NAME", func(o *perOffice) string {
		return fmt.Sprintf("%s	%s	%d	%s", o.oldest.Local().Format("2006-01-02 15:04"), o.office, o.n, oneLine(o.name, 60))
	})
	fmt.Fprintf(stdout, "%s undecided, at %s. Tell the office: its system finds them with awaiting=decision, its clerks in the mailbox.\n", counted(len(all), "case"), counted(len(offices), "office"))
	return nil
}

// allPages reads a listing of the admin API from path on, following its next
// links: the rows under field of every page, and each page as it came (-json).
func allPages[T any](ctx context.Context, c *adminClient, path, field string) ([]T, []json.RawMessage, error) {
	var all []T
	var raws []json.RawMessage
	for path != "" {
		var page map[string]json.RawMessage
		b, err := c.do(ctx, http.MethodGet, path, nil, &page)
		if err != nil {
			return nil, nil, err
		}
		var rows []T
		var next string
		if err := json.Unmarshal(page[field], &rows); err != nil && page[field] != nil {
			return nil, nil, fmt.Errorf("the gateway's %s page: %w", field, err)
		}
		if page["next"] != nil {
			if err := json.Unmarshal(page["next"], &next); err != nil {
				return nil, nil, fmt.Errorf("the gateway's %s page: next: %w", field, err)
			}
		}
		raws = append(raws, b)
		all = append(all, rows...)
		path = next
	}
	return all, raws, nil
}

// rowsOrRaw reads a paged listing (allPages); with -json it writes the pages as
// they came, and done says there is nothing left to print.
func rowsOrRaw[T any](ctx context.Context, c *adminClient, stdout io.Writer, path, field string) (rows []T, done bool, err error) {
	rows, raws, err := allPages[T](ctx, c, path, field)
	if err != nil || !c.raw {
		return rows, false, err
	}
	for _, b := range raws {
		stdout.Write(b)
	}
	return nil, true, nil
}

// counted is "1 office", "2 offices".
func counted(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// printRows prints rows as a table under header (tab-separated columns), or the
// sentence empty when there are none; it reports whether there were rows.
func printRows[T any](stdout io.Writer, rows []T, empty, header string, line func(T) string) bool {
	if len(rows) == 0 {
		fmt.Fprintln(stdout, empty)
		return false
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, line(r))
	}
	tw.Flush()
	return true
}

func (c *adminClient) endpoints(ctx context.Context, stdout io.Writer) error {
	var v struct {
		Endpoints []broker.EndpointState `json:"endpoints"`
	}
	if done, err := c.print(ctx, http.MethodGet, "/v1/admin/endpoints", nil, &v, stdout); done {
		return err
	}
	printRows(stdout, v.Endpoints, "every endpoint the gateway has called answers (no breaker open, none disabled)",
		"OFFICE\tCHANNEL\tSTATE\tFAILURES\tNEXT TRY\tREASON", func(e broker.EndpointState) string {
			next := ""
			if e.RetryAt != nil {
				next = e.RetryAt.Local().Format("15:04:05")
			}
			return fmt.Sprintf("%s\t%s\t%s\t%d\t%s\t%s", e.Office, e.Channel, e.State, e.Failures, next, oneLine(e.Reason, 80))
		})
	return nil
}

func (c *adminClient) enable(ctx context.Context, office, channel string, stdout io.Writer) error {
	var st broker.EndpointState
	if done, err := c.print(ctx, http.MethodPost, "/v1/admin/endpoints/"+url.PathEscape(office)+"/"+url.PathEscape(channel)+"/enable", nil, &st, stdout); done {
		return err
	}
	fmt.Fprintf(stdout, "%s %s: %s\n", st.Office, st.Channel, st.State)
	return nil
}

// reload reloads every gateway (in a cluster, all of them) and lists each
// one's result when there are several, also when the reload failed: which
// gateway refused a file or did not answer is what the operator must see.
func (c *adminClient) reload(ctx context.Context, stdout io.Writer) error {
	var v struct {
		Status string           `json:"status"`
		Counts map[string]int   `json:"counts"`
		Nodes  []api.NodeReload `json:"nodes"`
	}
	b, err := c.do(ctx, http.MethodPost, "/v1/admin/directory/reload", nil, &v)
	if c.raw {
		// The answer as it came, also a refusal's (which names each gateway's
		// result): a script reading -json got the text table instead.
		if len(b) > 0 {
			if _, werr := stdout.Write(b); werr != nil && err == nil {
				err = werr
			}
		}
		return err
	}
	if err != nil {
		var p struct {
			Nodes []api.NodeReload `json:"nodes"`
		}
		if json.Unmarshal(b, &p) == nil && len(p.Nodes) > 1 {
			printNodes(stdout, p.Nodes)
		}
		return err
	}
	fmt.Fprint(stdout, v.Status)
	for _, k := range slices.Sorted(maps.Keys(v.Counts)) {
		fmt.Fprintf(stdout, ", %d %s", v.Counts[k], k)
	}
	fmt.Fprintln(stdout)
	if len(v.Nodes) > 1 {
		printNodes(stdout, v.Nodes)
	}
	return nil
}

// printNodes lists a cluster reload's result per gateway.
func printNodes(w io.Writer, nodes []api.NodeReload) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GATEWAY\tADDRESS\tRESULT\tWHY")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Node, n.Address, n.Status, oneLine(n.Error, 120))
	}
	tw.Flush()
}

// oneLine folds s to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
