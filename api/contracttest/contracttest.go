// Package contracttest checks real answers of the gateway's REST API against its
// published contract (api/openapi.yaml) the way a client generated from that
// contract relies on it: strictly. The tests of packages api and gateway send
// real requests and hand each answer to Contract.Check.
//
// kin-openapi's response validation alone let through what a generated client
// cannot read: a JSON member the schema does not declare (an object schema
// without additionalProperties admits any member, so `nextAttemptAt` of the admin
// view went unnoticed), a body on a status the contract declares without one,
// and a problem type docs/problems.md does not list. Check adds those: every
// object schema that does not say otherwise is closed (additionalProperties:
// false, applied here and not in the published document, whose readers may
// follow their own rules about unknown members), and a problem document's type
// must be a row of docs/problems.md whose status is the answer's.
package contracttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/amtsbote/amtsbote/api"
)

// Contract is the contract made strict, with the problem types of docs/problems.md.
type Contract struct {
	Doc    *openapi3.T
	router routers.Router
	// problems maps a documented type URI to the statuses its row names.
	problems map[string][]int
}

// Router finds a request's operation in the contract: the tests that ask which
// operation a request is use this one, not a loading of their own.
func (c *Contract) Router() routers.Router { return c.router }

// ErrNotInContract: the request names no path of the contract (a face mounted
// beside the API, GET /v1/routes with its FIT-Connect document); Check has
// nothing to hold it to.
var ErrNotInContract = errors.New("the path is not in api/openapi.yaml")

var (
	loadOnce sync.Once
	loaded   *Contract
	loadErr  error
)

// Load is the contract of api.OpenAPI and docs/problems.md, made strict; one for
// the whole test binary (Check does not change it).
func Load(tb testing.TB) *Contract {
	tb.Helper()
	c, err := Default()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// Default is Load for a helper without a testing.TB.
func Default() (*Contract, error) {
	loadOnce.Do(func() {
		var md []byte
		if md, loadErr = os.ReadFile(ProblemsDoc()); loadErr == nil {
			loaded, loadErr = New(api.OpenAPI, md)
		}
	})
	return loaded, loadErr
}

// ProblemsDoc is the path of docs/problems.md, found from this file's place in
// the module: the tests of api and gateway run in directories of their own.
func ProblemsDoc() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "problems.md")
}

// New makes the contract spec strict (Strict), checks that it is valid OpenAPI
// with every example valid under its strict schema, and reads the problem types
// of problemsMD (docs/problems.md). The planted-defect tests call it with a
// contract or a problem table that has a defect.
func New(spec, problemsMD []byte) (*Contract, error) {
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("load the contract: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the contract is not valid OpenAPI: %w", err)
	}
	Strict(doc)
	// Validate checks every example against its schema (kin-openapi's default),
	// now the strict one: an example with a member its schema does not declare
	// would teach a client's author a shape the gateway never sends.
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("the contract made strict is not valid (an example breaks its schema?): %w", err)
	}
	doc.Servers = nil // the tests' servers listen on random ports
	// XML packages and receipts, tar archives, this YAML document, metrics and
	// attachments are opaque strings to the contract (their schemas are elsewhere).
	for _, ct := range []string{"application/xml", "application/yaml", "application/x-tar", "multipart/related", "text/plain"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the contract: %w", err)
	}
	problems, err := ProblemTypes(problemsMD)
	if err != nil {
		return nil, err
	}
	return &Contract{Doc: doc, router: router, problems: problems}, nil
}

// problemRow is a row of docs/problems.md's table: the type's short name and its
// status column ("422 (404 for GET /v1/services/{leikaKey}, ...)").
var problemRow = regexp.MustCompile("(?m)^\\| `([a-z/-]+)` \\| ([^|]*)\\|")

var statusCode = regexp.MustCompile(`\b[1-5][0-9]{2}\b`)

// ProblemTypes reads the problem types of docs/problems.md and the statuses each
// row names.
func ProblemTypes(md []byte) (map[string][]int, error) {
	out := map[string][]int{}
	for _, m := range problemRow.FindAllSubmatch(md, -1) {
		var codes []int
		for _, c := range statusCode.FindAll(m[2], -1) {
			n, _ := strconv.Atoi(string(c))
			codes = append(codes, n)
		}
		out["https://amtsbote.de/problems/"+string(m[1])] = codes
	}
	if len(out) < 10 {
		return nil, fmt.Errorf("docs/problems.md: only %d problem types read; has the table's form changed?", len(out))
	}
	return out, nil
}

// Strict closes every object schema of doc's responses that does not say
// otherwise: additionalProperties false where it is not given. A schema composed
// with allOf is first merged into one (its members' properties and required
// members together), since additionalProperties false on each member would
// refuse the others' members. An explicit additionalProperties (true, or a
// schema, as a map's) stays as written.
func Strict(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, resp := range op.Responses.Map() {
				if resp.Value == nil {
					continue
				}
				for _, mt := range resp.Value.Content {
					closeSchema(mt.Schema, seen)
				}
			}
		}
	}
	for _, ref := range doc.Components.Schemas {
		closeSchema(ref, seen)
	}
	for _, resp := range doc.Components.Responses {
		if resp.Value != nil {
			for _, mt := range resp.Value.Content {
				closeSchema(mt.Schema, seen)
			}
		}
	}
}

func closeSchema(ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	if ref == nil || ref.Value == nil || seen[ref.Value] {
		return
	}
	s := ref.Value
	seen[s] = true
	if len(s.AllOf) > 0 {
		mergeAllOf(s)
	}
	if isObject(s) && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
		no := false
		s.AdditionalProperties.Has = &no
	}
	for _, p := range s.Properties {
		closeSchema(p, seen)
	}
	closeSchema(s.Items, seen)
	closeSchema(s.AdditionalProperties.Schema, seen)
	for _, m := range append(slices.Clone(s.OneOf), s.AnyOf...) {
		closeSchema(m, seen)
	}
}

// mergeAllOf makes s, composed with allOf of object schemas, one object schema
// with its members' properties and required members. The most open member's
// additionalProperties wins (a Problem's extension members stay open in a
// ReloadProblem).
func mergeAllOf(s *openapi3.Schema) {
	props := openapi3.Schemas{}
	var required []string
	for k, v := range s.Properties {
		props[k] = v
	}
	required = append(required, s.Required...)
	for _, m := range s.AllOf {
		if m.Value == nil {
			continue
		}
		mv := m.Value
		if len(mv.AllOf) > 0 {
			// A member composed itself: merge a copy, the member stays as written
			// for its other uses.
			c := *mv
			mergeAllOf(&c)
			mv = &c
		}
		for k, v := range mv.Properties {
			props[k] = v
		}
		required = append(required, mv.Required...)
		switch ap := mv.AdditionalProperties; {
		case ap.Has != nil && *ap.Has:
			s.AdditionalProperties = openapi3.AdditionalProperties{Has: ap.Has}
		case ap.Schema != nil && s.AdditionalProperties.Has == nil:
			s.AdditionalProperties = openapi3.AdditionalProperties{Schema: ap.Schema}
		}
	}
	slices.Sort(required)
	s.Properties, s.Required, s.AllOf = props, slices.Compact(required), nil
	s.Type = &openapi3.Types{openapi3.TypeObject}
}

func isObject(s *openapi3.Schema) bool {
	return (s.Type != nil && s.Type.Is(openapi3.TypeObject)) || len(s.Properties) > 0
}

// Check holds one real answer to the contract: the request must name an
// operation (else ErrNotInContract, or for a method the path does not serve a
// 405 problem with Allow), the status must be declared for it, the content type
// too and the body valid under the strict schema (no undeclared member), a
// status declared without content must come without a body, and a problem
// document's type must be listed in docs/problems.md with this status. req is
// the request as sent (its body is not read).
func (c *Contract) Check(req *http.Request, status int, header http.Header, body []byte) error {
	return c.check(req, status, header, body, true)
}

// CheckHead is Check of an answer whose body is not at hand (a stream the test
// reads itself): its status, content type and declared headers, not its body
// (nor whether a body is allowed at all).
func (c *Contract) CheckHead(req *http.Request, status int, header http.Header) error {
	return c.check(req, status, header, nil, false)
}

func (c *Contract) check(req *http.Request, status int, header http.Header, body []byte, withBody bool) error {
	head := req.Method == http.MethodHead
	if head {
		// HEAD is answered wherever GET is (the contract's description), with
		// GET's status and headers and no content: held to GET's operation.
		req = req.Clone(req.Context())
		req.Method = http.MethodGet
		if len(body) > 0 {
			return fmt.Errorf("HEAD %s: %d bytes of content", req.URL.Path, len(body))
		}
	}
	route, params, err := c.router.FindRoute(req)
	switch {
	case head && status == http.StatusMethodNotAllowed && err == nil && route.Path == "/v1/admin/backup" && header.Get("Allow") != "":
		return nil // the backup's GET alone is no HEAD (it would make a whole backup to throw away)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		// Not an operation: the contract's description promises 405
		// method-not-allowed with Allow for every method a path does not list,
		// after the token on an office or admin path (401 unauthenticated).
		if status == http.StatusUnauthorized && withBody {
			return c.problem(status, header, body, c.Doc.Components.Schemas["Problem"].Value)
		}
		if status != http.StatusMethodNotAllowed || header.Get("Allow") == "" {
			return fmt.Errorf("%s %s: the contract has no such operation, and the answer is %d (Allow %q), not 405 with Allow",
				req.Method, req.URL.Path, status, header.Get("Allow"))
		}
		if !withBody {
			return nil
		}
		return c.problem(status, header, body, c.Doc.Components.Schemas["Problem"].Value)
	case errors.Is(err, routers.ErrPathNotFound):
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, ErrNotInContract)
	case err != nil:
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	where := fmt.Sprintf("%s %s → %d", req.Method, route.Path, status)
	resp := route.Operation.Responses.Status(status)
	if resp == nil || resp.Value == nil {
		return fmt.Errorf("%s: the contract declares no %d for this operation", where, status)
	}
	if head {
		return nil
	}
	if len(resp.Value.Content) == 0 && len(body) > 0 {
		return fmt.Errorf("%s: the contract declares no body, the answer has %d bytes (%s)", where, len(body), header.Get("Content-Type"))
	}
	if len(resp.Value.Content) > 0 {
		ct := header.Get("Content-Type")
		if resp.Value.Content.Get(ct) == nil {
			return fmt.Errorf("%s: content type %q not declared (declared: %s)", where, ct, strings.Join(slices.Sorted(mapsKeys(resp.Value.Content)), ", "))
		}
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
		Body: nopCloser{bytes.NewReader(body)}, Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, ExcludeResponseBody: !withBody,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()}}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if mt, _, _ := mime.ParseMediaType(header.Get("Content-Type")); mt == "application/problem+json" && withBody && status >= 400 {
		if err := c.problem(status, header, body, resp.Value.Content.Get(mt).Schema.Value); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	return nil
}

// CheckProblem holds a problem document of a path the contract does not have
// (GET /v1/routes, the peer endpoint) to docs/problems.md and the Problem
// schema: every problem the gateway's HTTP API answers is one of the table's.
func (c *Contract) CheckProblem(status int, header http.Header, body []byte) error {
	return c.problem(status, header, body, c.Doc.Components.Schemas["Problem"].Value)
}

// problem checks a problem document against schema, the answer's (Problem, or
// ReloadProblem): valid under it, every member one it declares — Problem stays
// open for clients (RFC 9457: ignore an extension you do not know), but the
// gateway's own extension members are all declared, so a new one must be too —,
// its status member the answer's, its type a row of docs/problems.md naming
// that status.
func (c *Contract) problem(status int, header http.Header, body []byte, schema *openapi3.Schema) error {
	if mt, _, _ := mime.ParseMediaType(header.Get("Content-Type")); mt != "application/problem+json" {
		return fmt.Errorf("a refusal as %q, not application/problem+json", header.Get("Content-Type"))
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("a problem document that is not JSON: %w", err)
	}
	if err := schema.VisitJSON(v, openapi3.MultiErrors(), openapi3.DisableSchemaErrorDetails()); err != nil {
		return fmt.Errorf("not a Problem: %w", err)
	}
	for k := range v {
		if _, ok := schema.Properties[k]; !ok {
			return fmt.Errorf("problem member %q is not declared in the contract", k)
		}
	}
	typ, _ := v["type"].(string)
	codes, ok := c.problems[typ]
	if !ok {
		return fmt.Errorf("problem type %q is not listed in docs/problems.md", typ)
	}
	if !slices.Contains(codes, status) {
		return fmt.Errorf("problem type %q with status %d; docs/problems.md names %v", typ, status, codes)
	}
	if s, _ := v["status"].(float64); int(s) != status {
		return fmt.Errorf("problem status member %v, the answer's status %d", v["status"], status)
	}
	return nil
}

func mapsKeys(c openapi3.Content) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range c {
			if !yield(k) {
				return
			}
		}
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
