package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/flags"
	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"
)

// Config is the YAML configuration of one proxy, as the operator wrote it.
// It is plain data: Validate checks it, Compile turns it into the immutable
// route table that the hot path reads.
type Config struct {
	Listen          string      `yaml:"listen"`
	AdminListen     string      `yaml:"admin_listen"`
	Monolith        string      `yaml:"monolith"`
	Flags           FlagsConfig `yaml:"flags"`
	Routes          []Route     `yaml:"routes"`
	ShutdownTimeout Duration    `yaml:"shutdown_timeout"`
	PreserveHost    *bool       `yaml:"preserve_host"`
	Timeouts        Timeouts    `yaml:"timeouts"`
	TrustedProxies  []string    `yaml:"trusted_proxies"`
	SecretHeaders   []string    `yaml:"secret_headers"`
	ShadowWorkers   int         `yaml:"shadow_workers"`
	ShadowQueue     int         `yaml:"shadow_queue"`
	ShadowMemory    Size        `yaml:"shadow_memory"`
	AccessLog       bool        `yaml:"access_log"`
	Limits          Limits      `yaml:"limits"`
	AdminTokenFile  string      `yaml:"admin_token_file"`

	// dir is the folder of the config file: relative paths in it are
	// resolved against it, as the operator reads them.
	dir string
	// raw is the file's content, for noticing a change.
	raw []byte
	// validated: Validate found nothing wrong (and set the defaults).
	validated bool
}

// FlagsConfig names the flag source: a flag file, or a flagd daemon that
// serves the same flags to a fleet of proxies.
type FlagsConfig struct {
	File  string       `yaml:"file"`
	Flagd *FlagdConfig `yaml:"flagd"`
}

// FlagdConfig points at a flagd daemon.
type FlagdConfig struct {
	Host string `yaml:"host"`
	// Port defaults to 8015 (sync) in in-process mode, 8013 in rpc mode.
	Port int `yaml:"port"`
	// Mode is in-process (default: the daemon streams the flag set and
	// each proxy evaluates locally) or rpc (each evaluation of a flag with
	// targeting is a call to the daemon).
	Mode     string `yaml:"mode"`
	Selector string `yaml:"selector"`
}

// Route sends a share of the requests matching Path (and Methods) to
// Service instead of the monolith.
type Route struct {
	Name         string   `yaml:"name"`
	Path         string   `yaml:"path"`
	Methods      []string `yaml:"methods"`
	Service      string   `yaml:"service"`
	Flag         string   `yaml:"flag"`
	Sticky       string   `yaml:"sticky"`
	PreserveHost *bool    `yaml:"preserve_host"`
	Timeouts     Timeouts `yaml:"timeouts"`
	Shadow       Shadow   `yaml:"shadow"`
	// MaxBody overrides limits.max_body for this route; 0 inherits.
	MaxBody  Size     `yaml:"max_body"`
	Fallback Fallback `yaml:"fallback"`
	Eject    Eject    `yaml:"eject"`
}

// Fallback replays a request to the monolith when the service was chosen
// and failed before answering: the strangler pattern's promise that the
// monolith is always there.
type Fallback struct {
	// On lists the failures replayed: connect, reset, timeout, 5xx.
	// Unset: connect, reset, timeout. An empty list turns fallback off.
	On []string `yaml:"on"`
	// Methods are replayed after the request may have reached the service
	// (reset, timeout, 5xx); a connect failure is replayed whatever the
	// method, since nothing reached the service. Unset: GET, HEAD,
	// OPTIONS. An empty list replays connect failures only.
	Methods []string `yaml:"methods"`
	// MaxBody bounds the request bodies buffered for replay.
	MaxBody Size `yaml:"max_body"`
}

// Eject takes a failing service out of a route for a while, as Envoy's
// outlier detection does: its share goes to the monolith.
type Eject struct {
	// ConsecutiveFailures ejects after this many failures in a row;
	// unset: 5; 0 turns ejection off; at most 1,000,000.
	ConsecutiveFailures *int     `yaml:"consecutive_failures"`
	BaseTime            Duration `yaml:"base_time"`
	MaxTime             Duration `yaml:"max_time"`
}

// Limits protect the proxy and the upstreams from slow, large and
// malformed requests. Zero fields take the defaults below.
type Limits struct {
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	StallTimeout      Duration `yaml:"stall_timeout"`
	MaxHeaderBytes    Size     `yaml:"max_header_bytes"`
	MaxHeaderCount    int      `yaml:"max_header_count"`
	// UnderscoreHeaders is drop (default), reject or allow.
	UnderscoreHeaders string `yaml:"underscore_headers"`
	// MaxBody bounds request bodies; 0 is unlimited.
	MaxBody Size `yaml:"max_body"`
}

// Shadow configures comparison for a route: a share of its eligible
// requests is also sent to the side the split did not choose, and the two
// answers are compared off the request path.
type Shadow struct {
	// Percent of eligible requests compared; 0 (the default) is off. The
	// flag, when present in the flag file, overrides it live.
	Percent       float64  `yaml:"percent"`
	Flag          string   `yaml:"flag"`
	Methods       []string `yaml:"methods"`
	IgnoreHeaders []string `yaml:"ignore_headers"`
	IgnoreJSON    []string `yaml:"ignore_json"`
	UnorderedJSON []string `yaml:"unordered_json"`
	MaxBody       Size     `yaml:"max_body"`
	Timeout       Duration `yaml:"timeout"`
	Noise         bool     `yaml:"noise"`
}

// Timeouts bound the upstream calls. A zero field inherits: a route's from
// the top level, the top level's from the defaults.
type Timeouts struct {
	Connect        Duration `yaml:"connect"`
	ResponseHeader Duration `yaml:"response_header"`
	// Read bounds each wait for more of an answer's body once its head
	// came (nginx's proxy_read_timeout; Envoy's stream idle timeout).
	Read Duration `yaml:"read"`
	// Send bounds each wait for the upstream to take more of a request
	// (nginx's proxy_send_timeout).
	Send Duration `yaml:"send"`
	Idle Duration `yaml:"idle"`
}

// Defaults applied where the config is silent.
const (
	DefaultAdminListen     = "127.0.0.1:9090"
	DefaultShutdownTimeout = 15 * time.Second
	DefaultConnect         = 2 * time.Second
	DefaultResponseHeader  = 30 * time.Second
	DefaultRead            = 60 * time.Second // nginx's proxy_read_timeout
	DefaultSend            = 60 * time.Second // nginx's proxy_send_timeout
	DefaultIdle            = 90 * time.Second

	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultLimitsIdle        = 90 * time.Second
	DefaultStallTimeout      = 60 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxHeaderCount    = 100 // Envoy's

	DefaultFallbackMaxBody     = 64 << 10
	DefaultConsecutiveFailures = 5
	DefaultEjectBase           = 30 * time.Second
	DefaultEjectMax            = 5 * time.Minute

	DefaultShadowMaxBody = 1 << 20
	DefaultShadowTimeout = 5 * time.Second
	DefaultShadowQueue   = 1024
	DefaultShadowMemory  = 64 << 20
	// maxShadowBody bounds max_body: every compared request may hold this
	// much twice (both answers) in memory while it waits in the queue.
	maxShadowBody = 64 << 20

	// The queue's slots and the workers are allocated when the proxy
	// starts: a typo of a few digits must be a config error, not a crash
	// out of memory. A million slots are 8 MB of pointers.
	maxShadowQueue   = 1_000_000
	maxShadowWorkers = 10_000
	// maxConsecutiveFailures keeps the threshold far inside the int32 the
	// failure counter holds; a service failing a million times in a row
	// is not to be waited for.
	maxConsecutiveFailures = 1_000_000
)

// Fallback reasons, the reason label of strangler_fallbacks_total.
const (
	fallbackConnect = "connect"
	fallbackReset   = "reset"
	fallbackTimeout = "timeout"
	fallback5xx     = "5xx"
)

var (
	defaultFallbackOn      = []string{fallbackConnect, fallbackReset, fallbackTimeout}
	defaultFallbackMethods = []string{"GET", "HEAD", "OPTIONS"}
)

// DefaultShadowMethods are the methods shadowed unless a route lists its
// own: those that must not change anything (RFC 9110 §9.2.1). A write is
// shadowed only when listed, since the copy reaches a real backend.
var DefaultShadowMethods = []string{"GET", "HEAD", "OPTIONS"}

// DefaultSecretHeaders are never logged or stored, whatever the config says.
var DefaultSecretHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"}

// Duration is a time.Duration written in Go syntax ("250ms", "2s").
type Duration time.Duration

// UnmarshalYAML accepts Go duration syntax only: a bare number would be
// ambiguous (seconds? nanoseconds?), so it is refused. The problem is a
// *yaml.TypeError (see valueError): the decoder goes on with the rest.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDurationNode(n)
	if err != nil {
		return valueError(n, err)
	}
	*d = v
	return nil
}

// parseDurationNode is a Duration's value, or its problem without the line.
func parseDurationNode(n *yaml.Node) (Duration, error) {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("invalid duration %q (use Go syntax such as 250ms, 2s, 1m)", n.Value)
	}
	if v < 0 {
		return 0, fmt.Errorf("invalid duration %q: negative", n.Value)
	}
	return Duration(v), nil
}

// valueError is the problem of one value as yaml's decoder takes it from an
// UnmarshalYAML: a *yaml.TypeError is recorded and the decoder goes on with
// the rest of the document, where any other error aborts the whole decode
// (and one bad duration would hide every other problem of the file). Its
// line is where the value is, as in yaml's own messages.
func valueError(n *yaml.Node, err error) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
}

// Size is a byte count written as a number of bytes or with a KiB, MiB or
// GiB suffix ("1MiB").
type Size int64

// ParseSize parses a Size.
func ParseSize(s string) (Size, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q (use bytes or KiB, MiB, GiB, e.g. 1MiB)", s)
	}
	return Size(n * mult), nil
}

// UnmarshalYAML parses a Size. The problem is a *yaml.TypeError (see
// valueError): the decoder goes on with the rest.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseSizeNode(n)
	if err != nil {
		return valueError(n, err)
	}
	*s = v
	return nil
}

// parseSizeNode is a Size's value, or its problem without the line.
func parseSizeNode(n *yaml.Node) (Size, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("invalid size: not a scalar")
	}
	return ParseSize(n.Value)
}

// ConfigError lists every problem found in a config, one per line, each
// naming its place (routes[1].service: ...). Nothing is started or swapped
// when a config has any.
type ConfigError struct {
	Problems []string

	// hide are key paths whose value Validate must not judge beside the
	// problems of shape: a value refused (its zero value is what decoded,
	// so "required" or "must be positive" would report that key twice), or
	// a top-level key set in a second YAML document (which is not read, so
	// "monolith: required" would be false to the operator who set it there).
	hide []string
	// replayed counts the hides and problems an anchor's later uses
	// repeated (see checkShape); past maxReplayed the file is refused.
	replayed int

	// flagsOnly: every problem is a route's flag that cannot serve as a
	// percentage (Check), the flag source itself being fine.
	flagsOnly bool
}

// FlagsOnly reports whether every problem is a route's flag that cannot
// serve as a percentage, from Check: a problem a running proxy meets by
// keeping that route on the monolith (or, for a shadow flag, comparing
// nothing on it) and counting the flag's errors, as it does when the flag
// file changes to it, rather than by stopping.
func (e *ConfigError) FlagsOnly() bool { return e.flagsOnly }

func (e *ConfigError) Error() string { return strings.Join(e.Problems, "\n") }

func (e *ConfigError) add(format string, args ...any) {
	e.Problems = append(e.Problems, fmt.Sprintf(format, args...))
}

// refuse adds the problem of the value at path, which the decoder does not
// get: Validate's problems of path and of what is under it are not reported.
func (e *ConfigError) refuse(path, format string, args ...any) {
	e.hidePath(path)
	e.add(format, args...)
}

// hidePath keeps Validate's problems of path, and of what is under it,
// from being reported.
func (e *ConfigError) hidePath(path string) {
	e.hide = append(e.hide, path)
	if parent, ok := strings.CutSuffix(path, ".base_time"); ok {
		// max_time is judged against base_time: against its default
		// here, not the operator's value.
		e.hide = append(e.hide, parent+".max_time")
	}
}

// hiddenBy reports whether problem p, one of Validate's, is about a path in
// hidden (ConfigError.hide) or under one ("routes[1]" hides
// "routes[1].name: required").
func hiddenBy(p string, hidden map[string]bool) bool {
	// Each prefix of p that ends where a path element does: one lookup
	// each, not one comparison per hidden path (a file with thousands of
	// both took seconds).
	for i := 0; i < len(p); i++ {
		if strings.IndexByte(":.[ ", p[i]) >= 0 && i > 0 && hidden[p[:i]] {
			return true
		}
	}
	return false
}

func (e *ConfigError) err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// LoadConfig reads, parses and validates the config file at path. With
// problems, the config returned (when there is one) is what decoded, not
// fit to serve: `strangler ramp` reads a route's flag from it (see
// RampTarget).
func LoadConfig(path string) (*Config, error) {
	b, err := flags.ReadFile(path, flags.MaxConfigFile)
	if err != nil {
		return nil, err
	}
	return loadConfigBytes(path, b)
}

// loadConfigBytes is LoadConfig of b, read from path.
func loadConfigBytes(path string, b []byte) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(b, filepath.Dir(abs))
	if cfg == nil {
		return nil, err
	}
	cfg.raw = b
	verr := cfg.Validate()
	var more *ConfigError
	if errors.As(verr, &more) {
		more.Problems = withLines(b, more.Problems)
	}
	if err == nil {
		return cfg, verr
	}
	// Problems of shape, and Validate's on what decoded: all at once, but
	// none twice for one key.
	ce := err.(*ConfigError)
	if more != nil {
		seen := make(map[string]bool, len(ce.Problems))
		for _, p := range ce.Problems {
			seen[p] = true
		}
		hidden := make(map[string]bool, len(ce.hide))
		for _, h := range ce.hide {
			hidden[h] = true
		}
		for _, p := range more.Problems {
			if !seen[p] && !hiddenBy(p, hidden) {
				seen[p] = true
				ce.Problems = append(ce.Problems, p)
			}
		}
	}
	return cfg, ce // what decoded, as with Validate's problems alone: for ramp
}

// ParseConfig parses YAML into a Config without validating values. Every
// problem of shape is reported at once, each with its key path and line:
// unknown keys (a misspelt optional key, servce or timeuots, would otherwise
// silently fall back to a default in production), values of the wrong kind
// (a bare 5 for a duration, a list for a number), duplicate keys, and a
// second YAML document, which would otherwise be silently ignored. dir
// resolves relative paths.
func ParseConfig(b []byte, dir string) (*Config, error) {
	cfg, err := parseConfig(b, dir)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseConfig is ParseConfig, except that with problems of shape it also
// returns what decoded (nil when nothing did).
func parseConfig(b []byte, dir string) (*Config, error) {
	var ce ConfigError
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ConfigError{Problems: []string{"config: empty"}}
		}
		return nil, &ConfigError{Problems: []string{"config: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	// yaml reads one document at a time: anything after a --- would never
	// be read, so a file that holds more is refused rather than half used.
	// A trailing --- alone (generated or concatenated YAML) holds nothing
	// to lose. The keys set in later documents are not judged in the first
	// (a monolith set after the --- is not "required").
	second := false
	var firstKeys map[string]bool
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if !second {
				ce.add("config: %s", strings.TrimPrefix(err.Error(), "yaml: "))
			}
			break
		}
		if emptyDocument(&next) {
			continue
		}
		if !second {
			ce.add("config: line %d: a second YAML document (after ---) is not read: keep the whole config in one document", next.Line)
			second = true
		}
		if m := next.Content[0]; m.Kind == yaml.MappingNode {
			for i := 0; i < len(m.Content); i += 2 {
				// A key the first document sets too is judged there.
				if firstKeys == nil {
					firstKeys = mappingKeys(doc.Content[0])
				}
				if k := m.Content[i].Value; !firstKeys[k] {
					ce.hide = append(ce.hide, k)
				}
			}
		}
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		ce.add("config: empty")
		return nil, &ce
	}
	cfg := &Config{dir: dir}
	ok := checkShape(root, reflect.TypeOf(*cfg), "", &ce, map[shapeSeen]*aliasChecked{})
	if ce.replayed > maxReplayed {
		return nil, &ConfigError{Problems: []string{fmt.Sprintf(
			"config: its anchors repeat problems in more than %d places (aliases of aliases): write the shared settings out with fewer levels of aliases", maxReplayed)}}
	}
	if !ok {
		// Not a mapping: nothing of it is a config, and Validate would
		// only call every key required.
		return nil, &ce
	}
	// checkShape has decoded every value on its own and left in the tree
	// only what decodes (see checkShape), so this fails only where yaml
	// refuses the document as a whole (excessive aliasing).
	if err := root.Decode(cfg); err != nil {
		var te *yaml.TypeError
		switch {
		case !errors.As(err, &te):
			ce.add("config: %s", strings.TrimPrefix(err.Error(), "yaml: "))
			return nil, &ce
		case len(ce.Problems) == 0:
			for _, m := range te.Errors {
				ce.add("config: %s", m)
			}
			return nil, &ce
		}
		// yaml's own messages about values that did not decode repeat
		// checkShape's.
	}
	if err := ce.err(); err != nil {
		// What did decode is returned with the problems, so that
		// Validate can report its own too: one misspelt key or bad
		// duration must not hide a bad URL (every problem is reported at
		// once).
		return cfg, err
	}
	return cfg, nil
}

// mappingKeys returns the keys of mapping node m (none for another node).
func mappingKeys(m *yaml.Node) map[string]bool {
	keys := map[string]bool{}
	if m.Kind == yaml.MappingNode {
		for i := 0; i < len(m.Content); i += 2 {
			keys[m.Content[i].Value] = true
		}
	}
	return keys
}

// shapeSeen is an alias target already checked against a type: each is
// checked once, so that aliases cannot multiply the work.
type shapeSeen struct {
	n *yaml.Node
	t reflect.Type
}

// aliasChecked is what checking an alias target found: whether it
// decodes, and the paths it refused and the problems it found, relative to
// where it was used.
type aliasChecked struct {
	ok       bool
	hides    []string
	problems []string
}

// maxReplayed bounds the hides and problems anchors' later uses repeat,
// all together: aliases of aliases name exponentially many places (ten
// aliases of ten aliases, six deep, made a 700-byte file take 232 MiB
// before yaml's own check of excessive aliasing was reached). A file past
// it is refused as yaml refuses one.
const maxReplayed = 10000

var (
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// checkShape walks the YAML tree beside the Go type and reports, with its
// path and line, every key the type does not have, every key given twice,
// and every value that does not decode into its field. yaml's own decoder
// names no key ("cannot unmarshal !!seq into proxy.Config"), so each value
// is decoded here on its own.
//
// So that the rest of the file still decodes for Validate, it also edits
// the tree: it drops unknown keys and the later of two equal keys (yaml
// refuses a whole mapping that holds a key twice: a second listen would
// have emptied the config), and puts a placeholder in place of each value
// it refuses (see placeholder). It reports whether n itself decodes; false
// when n is refused, and the caller then replaces it. An anchor's value is
// checked (and edited) once per type, at its first use.
func checkShape(n *yaml.Node, t reflect.Type, path string, ce *ConfigError, seen map[shapeSeen]*aliasChecked) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		return checkShape(n.Alias, t, path, ce, seen)
	}
	if n.Anchor != "" {
		// An anchored value is checked (and edited) once per type, at
		// its first use, whether that is where it is defined or an
		// alias. Its problems are reported there; what it refused is
		// refused at every use, and Validate must not judge the
		// placeholders under those paths either.
		//
		// Its problems are repeated at every later use, under that use's
		// path and with the anchor's lines: each place that takes the
		// value has the problem (ramp reads a route's problems to know
		// whether its flag is the one meant).
		k := shapeSeen{n, t}
		if a, done := seen[k]; done {
			if ce.replayed += len(a.hides) + len(a.problems); ce.replayed > maxReplayed {
				return a.ok // parseConfig refuses the file
			}
			for _, h := range a.hides {
				ce.hidePath(path + h)
			}
			for _, p := range a.problems {
				ce.add("%s%s", path, p)
			}
			return a.ok
		}
		a := &aliasChecked{ok: true} // an anchor inside itself is the decoder's to refuse
		seen[k] = a
		from, fromP := len(ce.hide), len(ce.Problems)
		a.ok = checkShapeOnce(n, t, path, ce, seen)
		for _, h := range ce.hide[from:] {
			if rest, ok := strings.CutPrefix(h, path); ok {
				a.hides = append(a.hides, rest)
			}
		}
		for _, p := range ce.Problems[fromP:] {
			if rest, ok := strings.CutPrefix(p, path); ok && path != "" {
				a.problems = append(a.problems, rest)
			}
		}
		return a.ok
	}
	return checkShapeOnce(n, t, path, ce, seen)
}

// checkShapeOnce is checkShape of a node that is neither an alias nor
// anchored, or of an anchored one at its first use.
func checkShapeOnce(n *yaml.Node, t reflect.Type, path string, ce *ConfigError, seen map[shapeSeen]*aliasChecked) bool {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return true // an empty value leaves the default
	}
	at := path
	if at == "" {
		at = "config"
	}
	switch {
	case t.Kind() == reflect.Struct && t != durationType && t != sizeType:
		if n.Kind != yaml.MappingNode {
			ce.refuse(path, "%s: line %d: want a mapping (key: value), got %s", at, n.Line, describeNode(n))
			return false
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag != "" && tag != "-" {
				fields[tag] = f.Type
			}
		}
		first := map[string]int{}
		var own map[string]bool // the mapping's own keys, when it merges others
		kept := make([]*yaml.Node, 0, len(n.Content))
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, v := n.Content[i], n.Content[i+1]
			k := key.Value
			ft, ok := fields[k]
			line, dup := first[k]
			switch {
			case isMergeKey(key) && !dup:
				// YAML's merge key (<<: *defaults): the keys of the
				// mappings it names, where this one does not set them.
				first[k] = key.Line
				if own == nil {
					own = mappingKeys(n)
				}
				if checkMerge(v, t, path, own, ce, seen) {
					kept = append(kept, key, v)
				}
				continue
			case path == "" && strings.HasPrefix(k, "x-") && !dup:
				// An extension field, as in Compose files: a place for
				// anchors that routes merge, never a misspelt key (no key
				// of the config starts with x-). Not decoded.
				first[k] = key.Line
				continue
			}
			switch {
			case dup:
				ce.add("%s: line %d: given twice (first at line %d)", join(path, k), key.Line, line)
			case !ok:
				ce.add("%s: unknown key (line %d)", join(path, k), key.Line)
			default:
				first[k] = key.Line
				if !checkShape(v, ft, join(path, k), ce, seen) {
					v = placeholder(ft)
				}
				kept = append(kept, key, v)
			}
		}
		n.Content = kept
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ce.refuse(path, "%s: line %d: want a list, got %s", at, n.Line, describeNode(n))
			return false
		}
		for i, c := range n.Content {
			at := fmt.Sprintf("%s[%d]", path, i)
			if c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null" {
				// The decoder drops it, which would also shift the index
				// of every later entry in Validate's messages.
				ce.refuse(at, "%s: line %d: empty list entry (a - with nothing after it)", at, c.Line)
				n.Content[i] = placeholder(t.Elem())
				continue
			}
			if !checkShape(c, t.Elem(), at, ce, seen) {
				n.Content[i] = placeholder(t.Elem())
			}
		}
	default:
		want := describeType(t)
		if n.Kind != yaml.ScalarNode {
			ce.refuse(path, "%s: line %d: want %s, got %s", at, n.Line, want, describeNode(n))
			return false
		}
		var err error
		switch t {
		case durationType:
			_, err = parseDurationNode(n)
		case sizeType:
			_, err = parseSizeNode(n)
		default:
			err = n.Decode(reflect.New(t).Interface())
		}
		var te *yaml.TypeError
		tag := n.ShortTag()
		switch {
		case want == wantWhole && ((err != nil && tag == "!!int") || (tag == "!!float" && wholeNumber(n.Value))):
			ce.refuse(path, "%s: line %d: %s is out of range", at, n.Line, n.Value)
		case want == wantWhole && tag == "!!float" && !(err == nil && integral(n.Value)):
			// yaml would silently cut 1.5 to 1 (1e3 is 1000, and fine).
			ce.refuse(path, "%s: line %d: want %s, got %s", at, n.Line, want, describeNode(n))
		case err == nil:
			return true
		case errors.As(err, &te):
			ce.refuse(path, "%s: line %d: want %s, got %s", at, n.Line, want, describeNode(n))
		default: // a Duration's or Size's own message, or yaml's (bad !!binary)
			ce.refuse(path, "%s: line %d: %v", at, n.Line, err)
		}
		return false
	}
	return true
}

// isMergeKey reports whether a mapping's key is YAML's merge key, <<
// unquoted.
func isMergeKey(key *yaml.Node) bool {
	return key.Kind == yaml.ScalarNode && key.ShortTag() == "!!merge"
}

// checkMerge is checkShape of the value of a merge key in a mapping of
// type t at path: a mapping, or a list of them, usually aliases
// (<<: *defaults, <<: [*a, *b]). Each is checked as a mapping of t at
// path, since its keys land there; yaml's decoder does the merge itself
// (keys of the mapping win, then the first of a list that has the key).
// An entry that is no mapping is refused and left out of the list, so that
// the others still merge (Validate would otherwise call what they set
// required). It reports whether anything is left to merge; the caller
// drops the merge key when not.
//
// What a merged mapping refuses hides Validate's problems of those keys
// (see ConfigError.hide), except for the keys the merging mapping sets
// itself (own): its own value is the one decoded, and judged.
func checkMerge(v *yaml.Node, t reflect.Type, path string, own map[string]bool, ce *ConfigError, seen map[shapeSeen]*aliasChecked) bool {
	list, d := []*yaml.Node{v}, deref(v)
	if d.Kind == yaml.SequenceNode {
		if v.Kind == yaml.AliasNode {
			// yaml's decoder merges an alias of a mapping and a list
			// written in place, and refuses the whole file (naming
			// nothing) for an alias of a list.
			ce.add("%s: line %d: an alias of a list cannot be merged: write the list in place (<<: [*a, *b])", join(path, "<<"), v.Line)
			return false
		}
		list = d.Content
	}
	from, fromP := len(ce.hide), len(ce.Problems)
	kept := list[:0:0]
	for _, m := range list {
		if dm := deref(m); dm.Kind != yaml.MappingNode {
			ce.add("%s: line %d: want a mapping to merge, or a list of them (such as *defaults or [*a, *b]), got %s", join(path, "<<"), m.Line, describeNode(dm))
			continue
		}
		if checkShape(m, t, path, ce, seen) {
			kept = append(kept, m)
		}
	}
	if d.Kind == yaml.SequenceNode {
		d.Content = kept
	}
	// What the merged mappings say of a key the mapping sets itself is
	// not this place's: its own value is decoded and judged. (An anchor's
	// problems are recorded before this, so another route that takes the
	// anchor's value still has them.)
	under := join(path, "") // "routes[0]." or, at the top, ""
	ownKey := func(p string) bool {
		rest, ok := strings.CutPrefix(p, under)
		if !ok {
			return false
		}
		if i := strings.IndexAny(rest, ".[: "); i >= 0 {
			rest = rest[:i] // methods of methods[1]
		}
		return rest != "<<" && own[rest]
	}
	ce.hide = append(ce.hide[:from], slices.DeleteFunc(ce.hide[from:], ownKey)...)
	ce.Problems = append(ce.Problems[:fromP], slices.DeleteFunc(ce.Problems[fromP:], ownKey)...)
	return len(kept) > 0
}

// placeholder stands in the tree for a value of type t that checkShape
// refused, and decodes to its zero value: in a
// list it keeps every later entry at its index (the decoder would drop a
// value it cannot decode, and Validate would then name the next route
// routes[1] when the file's is routes[2]); for a struct, even behind a
// pointer (flags.flagd), it is an empty mapping, so that Validate judges
// that key (its problems are hidden, see ConfigError.hide) rather than
// its absence (flags.file: required).
func placeholder(t reflect.Type) *yaml.Node {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && t != durationType && t != sizeType:
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	case t.Kind() == reflect.String:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str"}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
}

// describeNode names a YAML value for a message.
// integral reports whether a YAML float is a whole number, such as 1e3.
func integral(s string) bool {
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	return err == nil && f == math.Trunc(f)
}

// emptyDocument reports whether a YAML document holds nothing, as after a
// trailing document marker.
func emptyDocument(n *yaml.Node) bool {
	if len(n.Content) == 0 {
		return true
	}
	c := n.Content[0]
	return len(n.Content) == 1 && c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null" && c.Value == ""
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

const wantWhole = "a whole number"

// wholeNumber reports whether s is written as a decimal integer: yaml
// reads one too large for 64 bits as a float.
func wholeNumber(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// describeType names what a field of type t takes, in the words of the
// README.
func describeType(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 250ms, 2s, 1m"
	case t == sizeType:
		return "a size such as 512KiB or 1MiB"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return wantWhole
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	}
	return "a single value"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var routeName = regexp.MustCompile(`^[a-z0-9-]+$`)

// Sticky kinds, as written after "sticky:".
const (
	stickyHeader = "header"
	stickyCookie = "cookie"
	stickyQuery  = "query"
	stickyIP     = "ip"
	stickyRandom = "random"
)

// Validate checks every value and fills in defaults. It reports all problems
// at once, each naming its place. It checks the flag file exists; whether the
// flags are in it is the caller's business (a missing flag is a warning).
func (c *Config) Validate() error {
	var ce ConfigError
	checkAddr(&ce, "listen", c.Listen, true)
	if c.AdminListen == "" {
		c.AdminListen = DefaultAdminListen // loopback: the admin API stays on the host
	}
	checkAddr(&ce, "admin_listen", c.AdminListen, true)
	if c.Listen != "" && c.Listen == c.AdminListen && !strings.HasSuffix(c.Listen, ":0") {
		ce.add("admin_listen: same address as listen (%q)", c.Listen)
	}
	checkUpstream(&ce, "monolith", c.Monolith)
	switch {
	case c.Flags.File != "" && c.Flags.Flagd != nil:
		ce.add("flags: set file or flagd, not both")
	case c.Flags.Flagd != nil:
		validateFlagd(&ce, c.Flags.Flagd)
	case c.Flags.File == "":
		ce.add("flags.file: required (or flags.flagd)")
	}
	if c.Flags.File != "" {
		if fi, err := os.Stat(c.FlagFile()); err != nil {
			ce.add("flags.file: %s", describeFileErr(c.FlagFile(), err))
		} else if fi.IsDir() {
			ce.add("flags.file: %q is a directory", c.FlagFile())
		}
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	}
	c.Timeouts = c.Timeouts.inherit(Timeouts{Connect: Duration(DefaultConnect), ResponseHeader: Duration(DefaultResponseHeader),
		Read: Duration(DefaultRead), Send: Duration(DefaultSend), Idle: Duration(DefaultIdle)})
	if c.PreserveHost == nil {
		t := true
		c.PreserveHost = &t
	}
	for i, p := range c.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			ce.add("trusted_proxies[%d]: invalid CIDR %q", i, p)
		}
	}
	for i, h := range c.SecretHeaders {
		if !validHeaderName(h) {
			ce.add("secret_headers[%d]: invalid header name %q", i, h)
		}
	}
	names := map[string]int{}
	byPattern := map[string][]int{} // route indexes by patternKey
	for i := range c.Routes {
		r := &c.Routes[i]
		at := fmt.Sprintf("routes[%d]", i)
		switch {
		case r.Name == "":
			ce.add("%s.name: required", at)
		case r.Name == "_default":
			ce.add("%s.name: %q is reserved for requests that match no route", at, r.Name)
		case !routeName.MatchString(r.Name):
			ce.add("%s.name: invalid name %q (use lower-case letters, digits and -)", at, r.Name)
		default:
			if j, dup := names[r.Name]; dup {
				ce.add("%s.name: duplicate name %q (also routes[%d])", at, r.Name, j)
			}
			names[r.Name] = i
		}
		r.Methods = methods(&ce, at+".methods", r.Methods, nil)
		if err := checkPattern(r.Path); err != nil {
			ce.add("%s.path: %v", at, err)
		} else {
			key := patternKey(r.Path)
			covered := false
			for _, j := range byPattern[key] {
				if methodsOverlap(c.Routes[j].Methods, r.Methods) {
					ce.add("%s.path: %s", at, patternClash(r.Path, j, &c.Routes[j]))
					// The first clash is enough (each with all was N²
					// problems), and a route whose methods the other's
					// cover need not be indexed: whatever clashes with
					// it clashes with that one.
					covered = methodsWithin(r.Methods, c.Routes[j].Methods)
					break
				}
			}
			if !covered {
				byPattern[key] = append(byPattern[key], i)
			}
		}
		checkUpstream(&ce, at+".service", r.Service)
		if r.Flag == "" && r.Name != "" {
			r.Flag = r.Name + "-percent"
		}
		if r.Sticky == "" {
			r.Sticky = stickyIP
		}
		if kind, name, err := parseSticky(r.Sticky); err != nil {
			ce.add("%s.sticky: %v", at, err)
		} else if kind == stickyHeader {
			checkStickyHeader(&ce, at+".sticky", name, c.Limits.UnderscoreHeaders)
		}
		if r.PreserveHost == nil {
			r.PreserveHost = c.PreserveHost
		}
		r.Timeouts = r.Timeouts.inherit(c.Timeouts)
		c.validateShadow(&ce, at+".shadow", r)
		validateFallback(&ce, at+".fallback", &r.Fallback)
		validateEject(&ce, at+".eject", &r.Eject)
	}
	c.validateLimits(&ce)
	if c.AdminTokenFile != "" {
		if _, err := readToken(c.TokenFile()); err != nil {
			ce.add("admin_token_file: %v", err)
		}
	}
	switch {
	case c.ShadowWorkers < 0:
		ce.add("shadow_workers: must not be negative")
	case c.ShadowWorkers > maxShadowWorkers:
		ce.add("shadow_workers: %d is more than the maximum of %d", c.ShadowWorkers, maxShadowWorkers)
	case c.ShadowWorkers == 0:
		c.ShadowWorkers = min(4*runtime.GOMAXPROCS(0), maxShadowWorkers)
	}
	if c.ShadowMemory == 0 {
		c.ShadowMemory = DefaultShadowMemory
	}
	switch {
	case c.ShadowQueue < 0:
		ce.add("shadow_queue: must not be negative")
	case c.ShadowQueue > maxShadowQueue:
		ce.add("shadow_queue: %d is more than the maximum of %d", c.ShadowQueue, maxShadowQueue)
	case c.ShadowQueue == 0:
		c.ShadowQueue = DefaultShadowQueue
	}
	if err := ce.err(); err != nil {
		return err
	}
	c.validated = true
	return nil
}

func validateFlagd(ce *ConfigError, f *FlagdConfig) {
	if f.Host == "" {
		ce.add("flags.flagd.host: required")
	}
	if f.Port < 0 || f.Port > 65535 {
		ce.add("flags.flagd.port: %d is not a port", f.Port)
	}
	switch f.Mode {
	case "":
		f.Mode = flags.ModeInProcess
	case flags.ModeInProcess, flags.ModeRPC:
	default:
		ce.add("flags.flagd.mode: %q: want in-process or rpc", f.Mode)
		return
	}
	// Defaulted here, not only when dialling, so that a config naming the
	// default port is the same flag source as one leaving it out (a reload
	// between them is no change of source) and messages name the real port.
	if f.Port == 0 {
		f.Port = int(flags.DefaultPort(f.Mode))
	}
}

func validateFallback(ce *ConfigError, at string, f *Fallback) {
	if f.On == nil {
		f.On = slices.Clone(defaultFallbackOn)
	}
	for j, on := range f.On {
		if !slices.Contains([]string{fallbackConnect, fallbackReset, fallbackTimeout, fallback5xx}, on) {
			ce.add("%s.on[%d]: %q: want connect, reset, timeout or 5xx", at, j, on)
		}
	}
	// Unset takes the defaults; an empty list replays only connect failures,
	// which never reached the service. Kept non-nil so that validating
	// again does not turn it into the defaults.
	if f.Methods == nil {
		f.Methods = slices.Clone(defaultFallbackMethods)
	} else if f.Methods = methods(ce, at+".methods", f.Methods, nil); f.Methods == nil {
		f.Methods = []string{}
	}
	if f.MaxBody == 0 {
		f.MaxBody = DefaultFallbackMaxBody
	} else if f.MaxBody > maxShadowBody {
		ce.add("%s.max_body: %d bytes is more than the 64MiB a request may hold for replay", at, f.MaxBody)
	}
}

func validateEject(ce *ConfigError, at string, e *Eject) {
	if e.ConsecutiveFailures == nil {
		n := DefaultConsecutiveFailures
		e.ConsecutiveFailures = &n
	} else if *e.ConsecutiveFailures < 0 {
		ce.add("%s.consecutive_failures: must not be negative", at)
	} else if *e.ConsecutiveFailures > maxConsecutiveFailures {
		ce.add("%s.consecutive_failures: %d is more than the maximum of %d (0 turns ejection off)", at, *e.ConsecutiveFailures, maxConsecutiveFailures)
	}
	if e.BaseTime == 0 {
		e.BaseTime = Duration(DefaultEjectBase)
	}
	if e.MaxTime == 0 {
		e.MaxTime = Duration(DefaultEjectMax)
	}
	if e.MaxTime < e.BaseTime {
		ce.add("%s.max_time: %v is less than base_time %v", at, time.Duration(e.MaxTime), time.Duration(e.BaseTime))
	}
}

func (c *Config) validateLimits(ce *ConfigError) {
	l := &c.Limits
	if l.ReadHeaderTimeout == 0 {
		l.ReadHeaderTimeout = Duration(DefaultReadHeaderTimeout)
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = Duration(DefaultLimitsIdle)
	}
	if l.StallTimeout == 0 {
		l.StallTimeout = Duration(DefaultStallTimeout)
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	} else if l.MaxHeaderBytes < 1<<10 || l.MaxHeaderBytes > 1<<20 {
		ce.add("limits.max_header_bytes: %d is outside 1KiB..1MiB", l.MaxHeaderBytes)
	}
	switch {
	case l.MaxHeaderCount == 0:
		l.MaxHeaderCount = DefaultMaxHeaderCount
	case l.MaxHeaderCount < 0:
		ce.add("limits.max_header_count: must be positive")
	}
	switch l.UnderscoreHeaders {
	case "":
		l.UnderscoreHeaders = "drop"
	case "drop", "reject", "allow":
	default:
		ce.add("limits.underscore_headers: %q: want drop, reject or allow", l.UnderscoreHeaders)
	}
}

func (c *Config) validateShadow(ce *ConfigError, at string, r *Route) {
	sh := &r.Shadow
	if math.IsNaN(sh.Percent) || sh.Percent < 0 || sh.Percent > 100 {
		ce.add("%s.percent: %v is outside 0..100", at, sh.Percent)
	}
	if sh.Flag == "" && r.Name != "" {
		sh.Flag = r.Name + "-shadow"
	}
	sh.Methods = methods(ce, at+".methods", sh.Methods, DefaultShadowMethods)
	for j, h := range sh.IgnoreHeaders {
		if !validHeaderName(h) {
			ce.add("%s.ignore_headers[%d]: invalid header name %q", at, j, h)
		}
	}
	_, ierr := compare.NewRules(compare.RulesConfig{IgnoreJSON: sh.IgnoreJSON})
	_, uerr := compare.NewRules(compare.RulesConfig{UnorderedJSON: sh.UnorderedJSON})
	for _, err := range []error{ierr, uerr} {
		if err != nil {
			ce.add("%s.%v", at, err)
		}
	}
	if ierr == nil && uerr == nil {
		// Each valid alone: what one says of the other.
		if _, err := compare.NewRules(compare.RulesConfig{IgnoreJSON: sh.IgnoreJSON, UnorderedJSON: sh.UnorderedJSON}); err != nil {
			ce.add("%s.%v", at, err)
		}
	}
	if sh.MaxBody == 0 {
		sh.MaxBody = DefaultShadowMaxBody
	} else if sh.MaxBody > maxShadowBody {
		ce.add("%s.max_body: %d bytes is more than the 64MiB a comparison may hold", at, sh.MaxBody)
	}
	if sh.Timeout == 0 {
		sh.Timeout = Duration(DefaultShadowTimeout)
	}
}

// TokenFile is admin_token_file's path, resolved against the config's
// folder; "" when unset.
func (c *Config) TokenFile() string {
	if c.AdminTokenFile == "" || filepath.IsAbs(c.AdminTokenFile) {
		return c.AdminTokenFile
	}
	return filepath.Join(c.dir, c.AdminTokenFile)
}

// flagSource names the flag source for messages.
func (c *Config) flagSource() string {
	if f := c.Flags.Flagd; f != nil {
		return fmt.Sprintf("flagd at %s:%d (%s)", f.Host, f.Port, f.Mode)
	}
	return c.Flags.File
}

// flagOptions are the flag source's options for flags.Open.
func (c *Config) flagOptions() flags.Options {
	if f := c.Flags.Flagd; f != nil {
		return flags.Options{Flagd: &flags.FlagdOptions{Host: f.Host, Port: uint16(f.Port), Mode: f.Mode, Selector: f.Selector}}
	}
	return flags.Options{File: c.FlagFile()}
}

// FlagFile is the flag file's path, resolved against the config's folder.
func (c *Config) FlagFile() string {
	if c.Flags.File == "" || filepath.IsAbs(c.Flags.File) {
		return c.Flags.File
	}
	return filepath.Join(c.dir, c.Flags.File)
}

func (t Timeouts) inherit(from Timeouts) Timeouts {
	if t.Connect == 0 {
		t.Connect = from.Connect
	}
	if t.ResponseHeader == 0 {
		t.ResponseHeader = from.ResponseHeader
	}
	if t.Read == 0 {
		t.Read = from.Read
	}
	if t.Send == 0 {
		t.Send = from.Send
	}
	if t.Idle == 0 {
		t.Idle = from.Idle
	}
	return t
}

// methods upper-cases a method list and reports unknown methods; an empty
// list becomes a copy of defaults (nil: all methods).
func methods(ce *ConfigError, at string, list, defaults []string) []string {
	if len(list) == 0 {
		return slices.Clone(defaults)
	}
	out := make([]string, 0, len(list))
	for j, m := range list {
		up := strings.ToUpper(m)
		if !isStandardMethod(up) {
			ce.add("%s[%d]: unknown method %q", at, j, m)
			continue
		}
		if up == http.MethodConnect {
			ce.add("%s[%d]: CONNECT is refused before routing (a reverse proxy has no tunnel to offer)", at, j)
			continue
		}
		out = append(out, up)
	}
	return out
}

// methodsOverlap reports whether two method lists (empty: all) share one.
func methodsOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, m := range a {
		if slices.Contains(b, m) {
			return true
		}
	}
	return false
}

// methodsWithin reports whether every method of a is one of b's (an empty
// list is every method).
func methodsWithin(a, b []string) bool {
	if len(b) == 0 {
		return true
	}
	if len(a) == 0 {
		return false
	}
	for _, m := range a {
		if !slices.Contains(b, m) {
			return false
		}
	}
	return true
}

func describeFileErr(path string, err error) string {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("%q does not exist", path)
	}
	return err.Error()
}

func checkAddr(ce *ConfigError, at, addr string, required bool) {
	if addr == "" {
		if required {
			ce.add("%s: required (host:port)", at)
		}
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		ce.add("%s: invalid address %q (want host:port)", at, addr)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		ce.add("%s: invalid port in %q", at, addr)
	}
}

func checkUpstream(ce *ConfigError, at, raw string) {
	if raw == "" {
		ce.add("%s: required (http://host:port)", at)
		return
	}
	if _, err := parseUpstream(raw); err != nil {
		ce.add("%s: %v", at, err)
	}
}

func parseUpstream(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("invalid URL %q (want http://host:port or https://host:port, optionally with a path prefix)", raw)
	}
	if _, port, err := net.SplitHostPort(u.Host); err == nil {
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("invalid URL %q: bad port", raw)
		}
	}
	if u.Hostname() == "" {
		// "http://:80" dials this host, which is seldom what was meant.
		return nil, fmt.Errorf("invalid URL %q: no host (want http://host:port; 127.0.0.1 for this machine)", raw)
	}
	return u, nil
}

// checkPattern accepts what chi accepts and refuses, with a reason, what
// would make chi panic at registration time.
func checkPattern(p string) (err error) {
	if p == "" {
		return errors.New("required (a chi pattern such as /api/orders/*)")
	}
	if p[0] != '/' {
		return fmt.Errorf("invalid pattern %q: must start with /", p)
	}
	if i := strings.IndexByte(p, '*'); i >= 0 && i != len(p)-1 {
		return fmt.Errorf("invalid pattern %q: * is allowed only at the end", p)
	}
	if strings.Count(p, "{") != strings.Count(p, "}") {
		return fmt.Errorf("invalid pattern %q: unbalanced braces", p)
	}
	// What the pattern spells outside its parameters must survive the
	// proxy's path normalization, or the route silently gets nothing.
	lit := patternLiterals(p)
	switch _, escaped := decodeUnreserved(lit); {
	case strings.ContainsAny(lit, "?#"):
		return fmt.Errorf("invalid pattern %q: routes match the path only, so a ? or # in a pattern never matches a request", p)
	case hasDotSegment(lit, true):
		return fmt.Errorf("invalid pattern %q: the proxy resolves . and .. segments before routing, so a pattern holding one never matches a request", p)
	case escaped:
		return fmt.Errorf("invalid pattern %q: the proxy decodes escaped letters, digits, -, ., _ and ~ before routing (%%6F is o), so the pattern never matches a request: write the characters themselves", p)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("invalid pattern %q: %v", p, r)
		}
	}()
	chi.NewMux().Handle(p, http.NotFoundHandler())
	return nil
}

// patternLiterals is p with each parameter (braces nest, as in chi's
// parser, since a regexp may hold {n}) written as "{}".
func patternLiterals(p string) string {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '{':
			if depth == 0 {
				b.WriteByte('{')
			}
			depth++
		case c == '}' && depth > 0:
			if depth--; depth == 0 {
				b.WriteByte('}')
			}
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// patternKey is a pattern as chi tells patterns apart. A parameter's name is
// only a label, and a regexp matches whole segments whether or not it is
// written with ^ and $, so /users/{id} and /users/{uid} (or {id:[0-9]+} and
// {n:^[0-9]+$}) are one route to chi: the later silently replaces the
// earlier, which then never gets a request. Braces nest as in chi's own
// parser, since a regexp may hold {n}. p has passed checkPattern.
func patternKey(p string) string {
	var b strings.Builder
	for {
		start := strings.IndexByte(p, '{')
		if start < 0 {
			b.WriteString(p)
			return b.String()
		}
		b.WriteString(p[:start])
		depth, end := 0, -1
		for i := start; i < len(p) && end < 0; i++ {
			switch p[i] {
			case '{':
				depth++
			case '}':
				if depth--; depth == 0 {
					end = i
				}
			}
		}
		if end < 0 {
			b.WriteString(p[start:])
			return b.String()
		}
		_, re, isRegexp := strings.Cut(p[start+1:end], ":")
		b.WriteByte('{')
		if isRegexp {
			b.WriteByte(':')
			if re != "" && re[0] != '^' {
				re = "^" + re
			}
			if re != "" && re[len(re)-1] != '$' {
				re += "$"
			}
			b.WriteString(re)
		}
		b.WriteByte('}')
		p = p[end+1:]
	}
}

// patternClash says that path is already routed by routes[j], naming that
// route and, when it is written differently, its pattern.
func patternClash(path string, j int, other *Route) string {
	by := fmt.Sprintf("routes[%d]", j)
	if other.Name != "" {
		by += fmt.Sprintf(" (%s)", other.Name)
	}
	if other.Path == path {
		return fmt.Sprintf("%q is already routed by %s for the same methods", path, by)
	}
	return fmt.Sprintf("%q is already routed by %s as %q for the same methods: chi ignores parameter names, so only one of the two would get requests", path, by, other.Path)
}

// checkStickyHeader refuses a sticky header that never reaches the split,
// since every request would then silently fall back to the client address.
// underscore is limits.underscore_headers of the proxy that will run it.
func checkStickyHeader(ce *ConfigError, at, name, underscore string) {
	switch textproto.CanonicalMIMEHeaderKey(name) {
	case "Host":
		ce.add("%s: header:%s is never seen by the split: Go moves Host out of the request's headers, so every request would fall back to the client address; a host names a site, not a user: use ip or random, or a header, cookie or query parameter that names the user", at, name)
	case "Expect", shadowHeader:
		ce.add("%s: header:%s is never seen by the split: the proxy removes it from every request first, so every request would fall back to the client address; use a header, cookie or query parameter that names the user", at, name)
	}
	if !strings.Contains(name, "_") {
		return
	}
	var what string
	switch underscore {
	case "", "drop":
		underscore, what = "drop", "deletes it before the split, so every request would fall back to the client address"
	case "reject":
		what = "refuses (400) every request that carries it"
	default:
		return // allow, or a value validateLimits reports
	}
	ce.add("%s: header %s has an underscore, and limits.underscore_headers: %s %s; use a name with - instead, or set limits.underscore_headers: allow", at, name, underscore, what)
}

// parseSticky splits "header:X-User-Id" into its kind and name.
func parseSticky(s string) (kind, name string, err error) {
	kind, name, hasName := strings.Cut(s, ":")
	switch kind {
	case stickyHeader, stickyCookie, stickyQuery:
		if !hasName || name == "" {
			return "", "", fmt.Errorf("invalid sticky %q: %s needs a name (%s:NAME)", s, kind, kind)
		}
		switch {
		case kind == stickyHeader && !validHeaderName(name):
			return "", "", fmt.Errorf("invalid sticky %q: bad header name", s)
		case kind == stickyCookie && !validHeaderName(name):
			// RFC 6265's cookie-name is the same token: no space, no
			// "=" or ";", which no Cookie header could pair with a value.
			return "", "", fmt.Errorf("invalid sticky %q: a cookie name is a token (no spaces, =, ; or quotes), so %q would never be found and every request would fall back to the client address", s, name)
		case kind == stickyQuery && (strings.TrimSpace(name) != name || strings.ContainsAny(name, "=&#")):
			return "", "", fmt.Errorf("invalid sticky %q: a query parameter's name has no spaces at its ends and no =, & or #: %q would never be found and every request would fall back to the client address", s, name)
		}
		return kind, name, nil
	case stickyIP, stickyRandom:
		if hasName {
			return "", "", fmt.Errorf("invalid sticky %q: %s takes no name", s, kind)
		}
		return kind, "", nil
	}
	return "", "", fmt.Errorf("invalid sticky %q (want header:NAME, cookie:NAME, query:NAME, ip or random)", s)
}

// validHeaderName is the RFC 9110 token syntax of a field name, as
// net/http itself checks it.
func validHeaderName(h string) bool { return httpguts.ValidHeaderFieldName(h) }

// parsePrefix accepts a CIDR or a bare address (a /32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// RampTarget returns the flag file and the flag that route name of cfg
// uses, for `strangler ramp`. cfg may be one LoadConfig refused, with its
// problems: a rollback at 3 AM must not wait for a typo elsewhere in the
// config (which the running proxy refused, and still serves the previous
// version of) to be fixed. So only problems that could change the answer
// refuse it: the document as a whole, the flag source, the routes list,
// the route's name or flag, a second route of that name, or an unknown
// key in the route while its flag is the default one (a misspelt
// "flag_name:" leaves the default in place of the flag meant).
func RampTarget(cfg *Config, problems []string, name string) (flagFile, flag string, err error) {
	for _, p := range problems {
		if whichFlagsProblem(p) {
			return "", "", errors.New(p)
		}
	}
	var names []string
	found := -1
	for i, r := range cfg.Routes {
		names = append(names, r.Name)
		if r.Name != name {
			continue
		}
		if found >= 0 {
			return "", "", fmt.Errorf("routes[%d] and routes[%d] are both named %q", found, i, name)
		}
		found = i
	}
	if found < 0 {
		return "", "", fmt.Errorf("no route %q (routes: %s)", name, strings.Join(names, ", "))
	}
	r := cfg.Routes[found]
	flag = r.Flag
	if flag == "" {
		flag = r.Name + "-percent"
	}
	at := fmt.Sprintf("routes[%d]", found)
	for _, p := range problems {
		rest, ok := strings.CutPrefix(p, at)
		if !ok || rest == "" || !strings.ContainsRune(":. ", rune(rest[0])) {
			continue
		}
		key, _, _ := strings.Cut(strings.TrimPrefix(rest, "."), ":")
		if strings.HasPrefix(rest, ":") || key == "name" || key == "flag" ||
			strings.Contains(rest, "unknown key") && !strings.Contains(key, ".") && flag == r.Name+"-percent" {
			return "", "", errors.New(p)
		}
	}
	switch {
	case cfg.Flags.Flagd != nil:
		return "", "", fmt.Errorf("the config reads its flags from a flagd daemon, and ramp edits flag files only: set flag %q where that daemon's flags are kept", flag)
	case cfg.FlagFile() == "":
		return "", "", errors.New("flags.file: required")
	}
	return cfg.FlagFile(), flag, nil
}
