package main

import (
	"fmt"
	"runtime/debug"
)

// Set at build time by `make build`: -ldflags "-X main.version=... -X
// main.commit=... -X main.date=...". Where they are not set the binary's
// build information fills in what it has (go install module@version sets
// the module version; a build in a git checkout the commit and its time).
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// buildStamp is what `fishgate version` says of the binary.
type buildStamp struct {
	Version, Commit, Date, Go string
	Modified                  bool // built from a checkout with changes
}

// stamped is the stamp: the ldflags' values first, then info's.
func stamped(info *debug.BuildInfo) buildStamp {
	s := buildStamp{Version: version, Commit: commit, Date: date}
	if info != nil {
		s.Go = info.GoVersion
		if s.Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			s.Version = info.Main.Version
		}
		for _, kv := range info.Settings {
			switch kv.Key {
			case "vcs.revision":
				if s.Commit == "" {
					s.Commit = kv.Value
				}
			case "vcs.time": // the commit's time: the best date a plain go build has
				if s.Date == "" {
					s.Date = kv.Value
				}
			case "vcs.modified":
				s.Modified = kv.Value == "true" && commit == ""
			}
		}
	}
	return s
}

func (s buildStamp) commitText() string {
	switch {
	case s.Commit == "":
		return "unknown"
	case s.Modified:
		return s.Commit + " (with uncommitted changes)"
	}
	return s.Commit
}

// versionText is `fishgate version`'s output; its first line is
// "fishgate <version>".
func versionText(s buildStamp) string {
	orUnknown := func(v string) string {
		if v == "" {
			return "unknown"
		}
		return v
	}
	return fmt.Sprintf("fishgate %s\ncommit: %s\nbuilt: %s\ngo: %s\n", s.Version, s.commitText(), orUnknown(s.Date), orUnknown(s.Go))
}

// buildVersion is the version the binary reports (logs, `version`).
func buildVersion() string {
	info, _ := debug.ReadBuildInfo()
	return stamped(info).Version
}
