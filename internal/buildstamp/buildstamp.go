// Package buildstamp says which build of amtsbote runs: the release version when
// the build set one (-ldflags "-X github.com/amtsbote/amtsbote/internal/buildstamp.version=1.2.3"),
// and the Git commit Go stamped into the binary. The serve banner, `amtsbote
// version`, the start's log line and the amtsbote_build_info metric all say the
// same, so an operator in the middle of a rolling upgrade can tell which node
// runs what; before, every build called itself "dev".
package buildstamp

import (
	goversion "go/version"
	"runtime/debug"
	"sync"
)

// FixedGo is the first Go release whose standard library carries the fixes for
// the vulnerabilities this gateway's code reaches (govulncheck, make vulncheck;
// docs/operations.md, "Vulnerabilities"): go.mod's toolchain line, which make
// and .ci/run build with. go.mod's go line stays older so that a plain go vet
// of an older machine still works; a binary built that way is warned of at
// start (OlderGo).
const FixedGo = "go1.27.3"

// OlderGo says whether the binary was built with a Go release before FixedGo
// (false where the build did not say which).
func (i Info) OlderGo() bool {
	return goversion.IsValid(i.GoVersion) && goversion.Compare(i.GoVersion, FixedGo) < 0
}

// version is set by the release build's -ldflags; "" for any other build.
var version string

// Info is what the binary knows about its build.
type Info struct {
	Version   string // the release version, or "dev"
	Revision  string // the Git commit (12 hex digits), "" if the build had none
	Modified  bool   // built from a work tree with uncommitted changes
	GoVersion string
}

var read = sync.OnceValue(func() Info {
	i := Info{Version: version}
	if i.Version == "" {
		i.Version = "dev"
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return i
	}
	i.GoVersion = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value[:min(len(s.Value), 12)]
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
})

// Read returns the build's information.
func Read() Info { return read() }

// String is the version for people: "1.2.3 (commit 0123456789ab)", "dev (commit
// 0123456789ab, modified)", or "dev" for a build without Git information (go run,
// go test).
func (i Info) String() string {
	s := i.Version
	if i.Revision != "" {
		s += " (commit " + i.Revision
		if i.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return s
}
