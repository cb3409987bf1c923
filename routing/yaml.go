package routing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The YAML overlay is the file operators maintain by hand. Its shape is documented in
// docs/directory.md; testdata/directory/overlay.yaml is a complete example.

type yamlFile struct {
	HomeLands        []string            `yaml:"homeLands"`
	Services         []yamlService       `yaml:"services"`
	Offices          []yamlOffice        `yaml:"offices"`
	Responsibilities []yamlResp          `yaml:"responsibilities"`
	ServiceLists     map[string][]string `yaml:"leistungslisten"`
	Groups           []yamlGroup         `yaml:"gruppen"`
	Peers            []yamlPeer          `yaml:"peers"`
	Generate         []yamlRule          `yaml:"generate"`
	Areas            []yamlArea          `yaml:"areas"`
	Postcodes        map[string][]string `yaml:"postcodes"`
}

type yamlService struct {
	Key        string   `yaml:"key"`
	Name       string   `yaml:"name"`
	Synonyms   []string `yaml:"synonyms"`
	Lebenslage []string `yaml:"lebenslagen"`
	ShortText  string   `yaml:"kurztext"`
	Texts      struct {
		Voraussetzungen         string `yaml:"voraussetzungen"`
		Verfahrensablauf        string `yaml:"verfahrensablauf"`
		ErforderlicheUnterlagen string `yaml:"erforderlicheUnterlagen"`
		Fristen                 string `yaml:"fristen"`
		Kosten                  string `yaml:"kosten"`
		Rechtsgrundlage         string `yaml:"rechtsgrundlage"`
	} `yaml:"texte"`
	Source string `yaml:"quelle"`
}

type yamlAddress struct {
	Street   string `yaml:"strasse"`
	Postfach string `yaml:"postfach"`
	Postcode string `yaml:"plz"`
	City     string `yaml:"ort"`
}

type yamlChannel struct {
	Kind     string `yaml:"kind"`
	Level    int    `yaml:"level"`
	Endpoint string `yaml:"endpoint"`
}

type yamlOffice struct {
	ID       string        `yaml:"id"`
	Name     string        `yaml:"name"`
	Parent   string        `yaml:"parent"`
	Street   yamlAddress   `yaml:"hausanschrift"`
	Postal   yamlAddress   `yaml:"postanschrift"`
	Contact  yamlContact   `yaml:"kontakt"`
	Channels []yamlChannel `yaml:"kanaele"`
	CertRefs []string      `yaml:"zertifikate"`
	Sample   bool          `yaml:"beispiel"`
}

type yamlContact struct {
	Phone string `yaml:"telefon"`
	Email string `yaml:"email"`
	Web   string `yaml:"web"`
}

type yamlResp struct {
	Service string `yaml:"leistung"`
	Area    string `yaml:"gebiet"`
	Office  string `yaml:"stelle"`
	Role    string `yaml:"rolle"`
}

// yamlGroup is a ResponsibilityGroup: one office for many services in many areas.
// The services are listed in place (leistungen) or named by a list under
// leistungslisten (liste), which many groups share.
type yamlGroup struct {
	Office   string   `yaml:"stelle"`
	Areas    []string `yaml:"gebiete"`
	Services []string `yaml:"leistungen"`
	List     string   `yaml:"liste"`
	Role     string   `yaml:"rolle"`
}

type yamlPeer struct {
	Land      string `yaml:"land"`
	Name      string `yaml:"name"`
	GatewayID string `yaml:"gatewayId"`
	BaseURL   string `yaml:"baseUrl"`
	Sample    bool   `yaml:"beispiel"`
}

type yamlRule struct {
	Level    string        `yaml:"ebene"`
	Land     string        `yaml:"land"`
	Services []string      `yaml:"leistungen"`
	Channels []yamlChannel `yaml:"kanaele"`
}

type yamlArea struct {
	Key        string `yaml:"ars"`
	AGS        string `yaml:"ags"`
	Name       string `yaml:"name"`
	Population int    `yaml:"einwohner"`
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// ParseYAML reads a YAML overlay. name is used in error messages, which name the file
// and line of the offending record.
func ParseYAML(name string, r io.Reader) (*Source, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, &DataError{File: name, Msg: "read", Err: err}
	}
	if len(data) > maxFileSize {
		return nil, &DataError{File: name, Msg: fmt.Sprintf("file larger than %d bytes", maxFileSize)}
	}
	// Strict pass: a misspelt field is an error, not a silently ignored line.
	var f yamlFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		line := 0
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		return nil, &DataError{File: name, Line: line, Msg: msg}
	}
	// The line of each record, for error messages: a scan of the text finds them in
	// files laid out the usual way; anything else gets a second pass over the node tree.
	lines := scanRecordLines(data)
	for section, n := range map[string]int{"services": len(f.Services), "offices": len(f.Offices),
		"responsibilities": len(f.Responsibilities), "peers": len(f.Peers), "generate": len(f.Generate),
		"areas": len(f.Areas), "gruppen": len(f.Groups)} {
		if len(lines[section]) != n {
			var root yaml.Node
			_ = yaml.Unmarshal(data, &root)
			lines = recordLines(&root)
			break
		}
	}
	at := func(section string, i int) string {
		if l := lines[section]; i < len(l) {
			return name + ":" + strconv.Itoa(l[i])
		}
		return name
	}
	src := &Source{HomeLands: f.HomeLands, operatorWritten: true}
	// A key given twice in one file is a mistake in it (a copied block whose id was
	// not changed), as two responsible offices for one slot are (contradiction):
	// the later record silently replaced the earlier, with its channels, and
	// `directory check` said ok. Across files a later file still replaces an
	// earlier one: that is how an operator corrects data.
	first := map[string]string{}
	once := func(kind, key, where string) error {
		k := kind + "\x00" + key
		if prev, dup := first[k]; dup {
			file, line := splitOrigin(where)
			_, prevLine := splitOrigin(prev)
			return &DataError{File: file, Line: line, Msg: fmt.Sprintf("%s %s is defined here and at line %d of the same file; give it once", kind, key, prevLine)}
		}
		first[k] = where
		return nil
	}
	for _, l := range f.HomeLands {
		src.setOrigin("homeLand", l, name+":"+strconv.Itoa(keyLine(data, "homeLands")))
	}
	for i, s := range f.Services {
		sv := &Service{
			Key: strings.TrimSpace(s.Key), Name: strings.TrimSpace(s.Name), Synonyms: s.Synonyms,
			Lebenslage: s.Lebenslage, ShortText: s.ShortText, Source: s.Source,
			Texts: Texts(s.Texts),
		}
		if err := once("service", sv.Key, at("services", i)); err != nil {
			return nil, err
		}
		src.Services = append(src.Services, sv)
		src.setOrigin("service", sv.Key, at("services", i))
	}
	for i, o := range f.Offices {
		of := &Office{
			ID: strings.TrimSpace(o.ID), Name: strings.TrimSpace(o.Name), ParentID: o.Parent,
			Street:  Address(o.Street),
			Postal:  Address(o.Postal),
			Contact: Contact(o.Contact), CertRefs: o.CertRefs, Sample: o.Sample,
			SourceFile: at("offices", i),
		}
		for _, c := range o.Channels {
			of.Channels = append(of.Channels, Channel(c))
		}
		if err := once("office", of.ID, of.SourceFile); err != nil {
			return nil, err
		}
		src.Offices = append(src.Offices, of)
		src.setOrigin("office", of.ID, of.SourceFile)
	}
	for i, r := range f.Responsibilities {
		role, err := normalizeRole(r.Role)
		if err != nil {
			return nil, errorAt(at("responsibilities", i), "responsibility", err)
		}
		rs := Responsibility{ServiceKey: strings.TrimSpace(r.Service), AreaKey: strings.TrimSpace(r.Area), OfficeID: strings.TrimSpace(r.Office), Role: role,
			origin: at("responsibilities", i)}
		src.Responsibilities = append(src.Responsibilities, rs)
	}
	lists := make(map[string][]string, len(f.ServiceLists))
	for name, keys := range f.ServiceLists {
		lists[name] = trimAll(keys)
	}
	for i, g := range f.Groups {
		where := at("gruppen", i)
		services := trimAll(g.Services)
		switch {
		case g.List != "" && len(services) > 0:
			return nil, &DataError{File: where, Msg: "gruppe: give leistungen or liste, not both"}
		case g.List != "":
			l, ok := lists[g.List]
			if !ok {
				return nil, &DataError{File: where, Msg: fmt.Sprintf("gruppe: unknown liste %q (not under leistungslisten)", g.List)}
			}
			services = l
		}
		role, err := normalizeRole(g.Role)
		if err != nil {
			return nil, errorAt(where, "gruppe", err)
		}
		src.Groups = append(src.Groups, ResponsibilityGroup{OfficeID: strings.TrimSpace(g.Office), AreaKeys: trimAll(g.Areas),
			ServiceKeys: services, Role: role, Origin: where})
	}
	for i, p := range f.Peers {
		pe := &Peer{Land: p.Land, Name: p.Name, GatewayID: p.GatewayID, BaseURL: p.BaseURL, Sample: p.Sample}
		if err := once("peer", pe.Land, at("peers", i)); err != nil {
			return nil, err
		}
		src.Peers = append(src.Peers, pe)
		src.setOrigin("peer", pe.Land, at("peers", i))
	}
	for i, g := range f.Generate {
		rule := Rule{Land: g.Land, Services: g.Services, Origin: at("generate", i)}
		switch strings.ToLower(g.Level) {
		case "gemeinde":
			rule.Level = LevelGemeinde
		case "kreis":
			rule.Level = LevelKreis
		default:
			return nil, &DataError{File: rule.Origin, Msg: fmt.Sprintf("generate: ebene %q: want gemeinde or kreis", g.Level)}
		}
		for _, c := range g.Channels {
			rule.Channels = append(rule.Channels, Channel(c))
		}
		src.Rules = append(src.Rules, rule)
	}
	for i, a := range f.Areas {
		src.Areas = append(src.Areas, &Area{Key: a.Key, AGS: a.AGS, Name: a.Name, Population: a.Population})
		src.setOrigin("area", a.Key, at("areas", i))
	}
	if len(f.Postcodes) > 0 {
		src.Postcodes = f.Postcodes
		for plz := range f.Postcodes {
			src.setOrigin("plz", plz, name)
		}
	}
	return src, nil
}

// keyLine is the line of a top-level key ("homeLands:"), 0 when it is not found.
func keyLine(data []byte, key string) int {
	for i, l := range bytes.Split(data, []byte("\n")) {
		if bytes.HasPrefix(l, []byte(key+":")) {
			return i + 1
		}
	}
	return 0
}

// scanRecordLines finds the line of each item of the top-level lists without parsing:
// a top-level key starts at column 0, and its items are the lines that start with "- "
// at the first indentation found under it. The caller checks the counts.
func scanRecordLines(data []byte) map[string][]int {
	out := map[string][]int{}
	section, indent := "", -1
	for line := 1; len(data) > 0; line++ {
		l := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		if l[0] != ' ' && l[0] != '-' {
			if j := bytes.IndexByte(l, ':'); j > 0 {
				section, indent = string(l[:j]), -1
			}
			continue
		}
		t := bytes.TrimLeft(l, " ")
		if len(t) > 0 && t[0] == '-' && (len(t) == 1 || t[1] == ' ' || t[1] == '\r') {
			ind := len(l) - len(t)
			if indent < 0 {
				indent = ind
			}
			if ind == indent {
				out[section] = append(out[section], line)
			}
		}
	}
	return out
}

// recordLines maps each top-level list to the line of each of its items.
func recordLines(root *yaml.Node) map[string][]int {
	out := map[string][]int{}
	if root == nil || len(root.Content) == 0 {
		return out
	}
	m := root.Content[0]
	if m.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i].Value, m.Content[i+1]
		if val.Kind != yaml.SequenceNode {
			continue
		}
		for _, item := range val.Content {
			out[key] = append(out[key], item.Line)
		}
	}
	return out
}

// maxFileSize bounds what a loader reads; the whole of Saxony is far smaller.
const maxFileSize = 64 << 20
