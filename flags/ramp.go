package flags

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// lockDir takes the turn of a Ramp (flockDir); a variable for tests.
var lockDir = flockDir

// How long a Ramp waits for its turn (a variable for tests), and how
// often it tries: a ramp takes milliseconds, so a lock held longer is held
// by something stuck.
var lockWait = 5 * time.Second

const lockPoll = 10 * time.Millisecond

// Ramp sets the traffic percentage of a flag in the flag file at path and
// returns the previous one. It rewrites only the value of the flag's
// default variant, leaving every other byte of the file as it was (other
// flags, targeting rules, formatting), and replaces the file atomically
// (temporary file in the same directory, fsync, rename), keeping its
// permissions, so a running Source never sees a half-written file.
//
// A flag the file lacks is added (addFlag), with a note saying so: its
// route was sending every request to the monolith, so the old percentage
// is 0.
//
// Ramp refuses a percent outside 0..100 (ErrRange), an invalid file, a
// DISABLED flag unless the percent is 0
// (ErrDisabled: its route serves the monolith whatever the value, so the
// ramp would do nothing), and a path that is a symlink into a ConfigMap
// volume: a local edit would be lost at Kubernetes's next sync. Another
// symlink is followed, and the file it ends at is ramped, with a note. A
// default variant that is not a number is replaced, with a
// note (its route was on the monolith, so the old percentage is 0), and so
// is one outside 0..100; a note says when another variant still makes the
// flag unusable.
//
// A flag's targeting rule is kept, as everything else is (the contract:
// targeting pins chosen users, say beta testers at 100 %, while the rest
// ramp). But the rule decides which variant each request it matches gets:
// only requests it gives the default variant, or leaves to it, get the
// new value (a fractional split may give it to its share), so a ramp could
// read as a rollback while the rule keeps users on the service: for a
// targeted flag Ramp returns a note saying so, for the caller to show.
//
// The new file keeps the old one's owner and group as well as its mode:
// run as root, Ramp would otherwise leave a root-owned file that a proxy
// running as another user cannot read. When it may not (run by a user
// other than root who does not own the file or is not in its group), it
// refuses rather than leave such a file.
//
// Errors are not prefixed with "ramp": the caller says what failed.
//
// Ramps on one file (or one directory) from any number of processes take
// turns (lockDir), so each applies its change to the file the one before
// it wrote. An edit made another way meanwhile is not covered.
func Ramp(path, flag string, percent float64) (old float64, note string, err error) {
	if !inRange(percent) {
		return 0, "", fmt.Errorf("%w: %v", ErrRange, percent)
	}
	if percent == 0 {
		percent = 0 // -0 would be written as "-0"
	}
	link := path
	path, err = resolveLink(path)
	if err != nil {
		return 0, "", err
	}
	var linkNote string
	if path != link {
		linkNote = fmt.Sprintf("%s is a symlink: ramped the file it links to, %s", link, path)
	}
	// A lock that cannot be had (flock over some network file systems)
	// must not stop a rollback at 3 AM: the ramp goes on, and says so.
	var lockNote string
	if unlock, err := lockDir(filepath.Dir(path)); err != nil {
		lockNote = fmt.Sprintf("%v: this ramp did not wait for others on the same file", err)
	} else {
		defer unlock()
	}
	info, err := os.Lstat(path)
	if err != nil {
		return 0, "", err // names the path
	}
	if info.Mode()&os.ModeSymlink != 0 {
		return 0, "", fmt.Errorf("%s became a symlink during the ramp", path)
	}
	if !info.Mode().IsRegular() {
		return 0, "", fmt.Errorf("%s is not a regular file", path)
	}
	raw, err := ReadFile(path, MaxFlagFile)
	if err != nil {
		return 0, "", err // names the path
	}
	file, err := parse(raw)
	if err != nil {
		return 0, "", fmt.Errorf("flag file %s: %w", path, err)
	}
	if note := file.Note(); note != "" {
		// Which object to edit is for the operator to say: an edit of
		// one flagd does not read would not take.
		return 0, "", fmt.Errorf("%s: %s, then ramp", path, note)
	}
	fl, ok := file.flags[flag]
	if !ok {
		note, err := addFlag(path, raw, info, file, flag, percent)
		return 0, joinNotes(note, linkNote, lockNote), err
	}
	// Which definition to edit is for the operator to say: the last one
	// counts, and an editor shows the first.
	if err := fl.duplicateError(flag); err != nil {
		return 0, "", fmt.Errorf("%s: %w", path, err)
	}
	// A DISABLED flag sends its route to the monolith whatever its value:
	// a ramp up would change a number and nothing else, and read as done.
	// A ramp to 0 goes on (a rollback is never refused) and says so.
	var disabledNote string
	if fl.state == "DISABLED" {
		if percent != 0 {
			return 0, "", fmt.Errorf("%w: %q in %s: its route sends every request to the monolith whatever its value; set its \"state\" to \"ENABLED\" to ramp it",
				ErrDisabled, flag, path)
		}
		disabledNote = fmt.Sprintf("flag %q is DISABLED: its route already sends every request to the monolith", flag)
	}
	// So does a state that is neither (ErrState): a ramp up would read as
	// done and change nothing.
	if fl.badState {
		if percent != 0 {
			return 0, "", fmt.Errorf("%w: %q in %s: its \"state\" is %q, and its route sends every request to the monolith whatever its value; set its \"state\" to \"ENABLED\" to ramp it",
				ErrState, flag, path, fl.state)
		}
		disabledNote = fmt.Sprintf("flag %q's \"state\" is %q, neither ENABLED nor DISABLED: its route already sends every request to the monolith", flag, fl.state)
	}
	if fl.defaultVariant == "" {
		// Nothing to ramp: requests no rule places already go to the
		// monolith (the flag is unusable for them), and the rule is the
		// operator's to edit. Without a rule (or DISABLED), a ramp to 0
		// is a rollback already done: said, not refused.
		if percent == 0 && (fl.state == "DISABLED" || fl.badState || !fl.targeted) {
			return 0, joinNotes(disabledNote, fmt.Sprintf(`flag %q has no "defaultVariant": its route already sends every request to the monolith; nothing written`, flag), linkNote, lockNote), nil
		}
		return 0, "", fmt.Errorf(`%w: %q in %s has no "defaultVariant" (null): the requests its targeting does not place already go to the monolith; name one of its variants as "defaultVariant" to ramp it`,
			ErrNoDefault, flag, path)
	}
	// A default variant that is not a number (a quoted "10") makes the
	// flag unusable, and its route sends every request to the monolith:
	// the ramp replaces it, since refusing would leave an operator no
	// command that rolls the route back or forward.
	var typeNote string
	cur := fl.variants[fl.defaultVariant]
	old, ok = cur.(float64)
	if !ok {
		typeNote = fmt.Sprintf("flag %q's default variant %q was %s, not a number, so its route sent every request to the monolith: replaced it",
			flag, fl.defaultVariant, jsonKind(cur))
	}

	// Edit the bytes, not a re-encoded document, so the rest of the file
	// stays as its author wrote it.
	at := "flags." + escapePathKey(flag) + ".variants." + escapePathKey(fl.defaultVariant)
	if written := gjson.GetBytes(raw, at); !written.Exists() || !reflect.DeepEqual(written.Value(), cur) {
		// Keys spelled differently (encoding/json matches "Flags" too) or
		// repeated: the text does not say plainly which value is live.
		return 0, "", fmt.Errorf("cannot find flags.%s.variants.%s in %s as written (duplicate or differently cased keys?)",
			flag, fl.defaultVariant, path)
	}
	edited, err := sjson.SetRawBytes(raw, at, []byte(strconv.FormatFloat(percent, 'f', -1, 64)))
	if err != nil {
		return 0, "", fmt.Errorf("editing %s: %w", path, err)
	}
	// Read the result back the way the provider will.
	check, err := parse(edited)
	if err != nil {
		return 0, "", fmt.Errorf("edited file would be invalid: %w", err)
	}
	if got := check.flags[flag].variants[fl.defaultVariant]; got != percent {
		return 0, "", fmt.Errorf("edit of %s did not take (flag %q reads %v)", path, flag, got)
	}
	var stillNote string
	if err := check.CheckPercent(flag); err != nil {
		stillNote = fmt.Sprintf("the flag is still unusable, and its route stays on the monolith: %v", err)
	}
	if err := replaceFile(path, edited, info); err != nil {
		return 0, "", fmt.Errorf("replacing %s: %w", path, err)
	}
	if fl.targeted {
		note = targetingNote(flag, fl, percent)
	}
	return old, joinNotes(note, typeNote, stillNote, disabledNote, linkNote, lockNote), nil
}

// joinNotes joins the notes that are not empty.
func joinNotes(notes ...string) string {
	return strings.Join(slices.DeleteFunc(notes, func(n string) bool { return n == "" }), "; ")
}

// resolveLink follows path's symlinks to the file they end at, the one a
// ramp must replace (replacing the link would cut it from the file it
// shares). A chain through a "..data" entry is refused: that is how
// Kubernetes mounts a ConfigMap (flags.json -> ..data/flags.json), and a
// local edit would be undone at its next sync.
func resolveLink(path string) (string, error) {
	for range 40 { // as the kernel's limit on nested links
		info, err := os.Lstat(path)
		if err != nil || info.Mode()&os.ModeSymlink == 0 {
			return path, nil // an error is Lstat's to report, naming the path
		}
		to, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if slices.Contains(strings.Split(filepath.ToSlash(to), "/"), "..data") {
			return "", fmt.Errorf("%s is a symlink into a ConfigMap volume (%s): the file is managed by Kubernetes; edit the ConfigMap instead", path, to)
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(path), to)
		}
		path = to
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", path)
}

// addFlag writes a flag the file lacks, ENABLED, with one variant "on" at
// percent as its default. A route whose flag is missing sends every
// request to the monolith, so that is the percentage being left (0), and
// an operator who ramps it should not have to write flagd JSON by hand,
// at 3 AM, for the ramp to take. The definition goes in as the flags
// object's last member, on a line of its own indented like the first one,
// and every other byte of the file stays as it was.
func addFlag(path string, raw []byte, info os.FileInfo, file *File, flag string, percent float64) (note string, err error) {
	// The object encoding/json reads must be the one edited: a "Flags"
	// key, or a second "flags", would make them differ.
	obj := gjson.GetBytes(raw, "flags")
	if !obj.IsObject() || obj.Index <= 0 || obj.Index+len(obj.Raw) > len(raw) || string(raw[obj.Index:obj.Index+len(obj.Raw)]) != obj.Raw {
		return "", fmt.Errorf("%w: %q in %s, and cannot find its \"flags\" object as written (duplicate or differently cased keys?) to add it to",
			ErrNotFound, flag, path)
	}
	name, _ := json.Marshal(flag)       // a string: cannot fail
	end := obj.Index + len(obj.Raw) - 1 // the object's closing brace
	last := obj.Index + len(bytes.TrimRight(raw[obj.Index:end], " \t\r\n"))
	members := raw[obj.Index+1 : last]
	closing := raw[last:end]
	var b []byte
	b = append(b, raw[:last]...)
	if first := bytes.TrimLeft(members, " \t\r\n"); len(first) > 0 {
		b = append(b, ',')
		if indent := members[:len(members)-len(first)]; len(indent) > 0 {
			b = append(b, indent...)
		} else {
			b = append(b, ' ')
		}
	} else if bytes.ContainsRune(closing, '\n') {
		b = append(b, closing...)
		b = append(b, "  "...)
	}
	b = append(b, name...)
	b = fmt.Appendf(b, `: {"state": "ENABLED", "variants": {"on": %s}, "defaultVariant": "on"}`,
		strconv.FormatFloat(percent, 'f', -1, 64))
	b = append(b, raw[last:]...)

	check, err := parse(b)
	if err != nil {
		return "", fmt.Errorf("adding flag %q would make %s invalid: %w", flag, path, err)
	}
	if got, ok := check.flags[flag]; !ok || got.variants["on"] != percent || len(check.flags) != len(file.flags)+1 {
		return "", fmt.Errorf("adding flag %q to %s did not take", flag, path)
	}
	if err := replaceFile(path, b, info); err != nil {
		return "", fmt.Errorf("replacing %s: %w", path, err)
	}
	return fmt.Sprintf("flag %q was not in %s, so its route sent every request to the monolith: added it, ENABLED, with its default variant \"on\" at %s",
		flag, path, strconv.FormatFloat(percent, 'f', -1, 64)), nil
}

// targetingNote says what a targeting rule still decides after a ramp:
// the rule picks the variant of every request it matches (a fractional
// split matches all of them), and only the requests it leaves to the
// default variant get the new percentage. At 3 AM, "ramp orders 0" must
// not read as a rollback of users the rule pins elsewhere.
func targetingNote(flag string, fl fileFlag, percent float64) string {
	var others []string
	for _, name := range slices.Sorted(maps.Keys(fl.variants)) {
		if name != fl.defaultVariant {
			others = append(others, fmt.Sprintf("%s=%v", name, fl.variants[name]))
		}
	}
	// Not "the requests the rule leaves to the default variant": a
	// fractional rule leaves none, yet gives the default variant, and so
	// the new value, to its share of the requests.
	return fmt.Sprintf("flag %q has a targeting rule, which picks the variant of each request it matches: "+
		"only requests given the default variant %q (by the rule, or left to it) get %v, "+
		"not those it gives another variant (%s). Edit the rule to move them too",
		flag, fl.defaultVariant, strconv.FormatFloat(percent, 'f', -1, 64), strings.Join(others, ", "))
}

// escapePathKey makes a JSON object key safe as one component of a gjson or
// sjson path: flag names may contain dots, wildcards, '#', '@', '|' or a
// leading ':' (all path syntax). Escaping every byte that is not a letter,
// digit, '_' or '-' is always correct, if sometimes more than needed.
func escapePathKey(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// replaceFile atomically replaces path with data: readers see the old file
// or the new one, never a mix, and after a crash the file is whole. The new
// file gets the owner, group and permissions of the old one, described by
// info.
func replaceFile(path string, data []byte, info os.FileInfo) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".ramp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = keepOwner(tmp, info); err != nil {
		return err
	}
	if err = tmp.Chmod(info.Mode().Perm()); err != nil { // CreateTemp makes it 0600
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Persist the rename itself.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		_ = d.Close()
		return err
	}
	return d.Close()
}
