package config

// Logging defaults. The file has no log section: the level and format are
// flags of `fishgate serve` and `fishgate demo` (--log-level,
// --log-format), whose defaults are these.
const (
	DefaultLogLevel  = "info"
	DefaultLogFormat = "text"
)

// LogFormats are the accepted log formats: slog's text (key=value) and
// JSON (one object per line) handlers.
var LogFormats = []string{"text", "json"}
