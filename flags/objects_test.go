package flags

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A file with two "flags" objects (merged by hand or by a template) is
// read by flagd as one of them: the others' flags are silently missing
// while an editor shows them. Load says so (Note) without refusing the
// file, which flagd accepts, and Ramp will not edit it: an edit of an
// object flagd does not read would not take.
func TestFileWithTwoFlagsObjects(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, content string
		read, lost    string
		note          string
	}{
		{"a key repeated: the last is read",
			"{\"flags\": {\"orders-percent\": {\"state\":\"ENABLED\",\"variants\":{\"on\":10},\"defaultVariant\":\"on\"}},\n" +
				" \"flags\": {\"users-percent\": {\"state\":\"ENABLED\",\"variants\":{\"on\":5},\"defaultVariant\":\"on\"}}}\n",
			"users-percent", "orders-percent",
			`the file has 2 "flags" objects (lines 1, 2): flagd reads only the one at line 2, and flag "orders-percent", defined only in another, is not read; merge them into one`},
		{"another case: encoding/json takes Flags for flags",
			"{\n\"flags\": {\"a\": {\"state\":\"ENABLED\",\"variants\":{\"on\":10},\"defaultVariant\":\"on\"}, \"b\": {\"state\":\"ENABLED\",\"variants\":{\"on\":1},\"defaultVariant\":\"on\"}},\n" +
				"\"Flags\": {\"c\": {\"state\":\"ENABLED\",\"variants\":{\"on\":5},\"defaultVariant\":\"on\"}}}\n",
			"a", "c",
			`the file has 2 "flags" objects (lines 2, 3): flagd reads only the one at line 2, and flag "c", defined only in another, is not read; merge them into one`},
		{"the same flags in both",
			"{\"flags\": {\"a\": {\"state\":\"ENABLED\",\"variants\":{\"on\":10},\"defaultVariant\":\"on\"}},\n" +
				"\"flags\": {\"a\": {\"state\":\"ENABLED\",\"variants\":{\"on\":20},\"defaultVariant\":\"on\"}}}\n",
			"a", "",
			`the file has 2 "flags" objects (lines 1, 2): flagd reads only the one at line 2, and every flag is in the one read; merge them into one`},
		{"one object", rampFile, "orders-percent", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := writeFlags(t, t.TempDir(), c.content)
			f, err := Load(path)
			if err != nil {
				t.Fatalf("Load refused a file flagd accepts: %v", err)
			}
			if got := f.Note(); got != c.note {
				t.Errorf("Note:\n got %q\nwant %q", got, c.note)
			}
			if !f.Has(c.read) || (c.lost != "" && f.Has(c.lost)) {
				t.Errorf("flags read: %v; want %s read and %q not", f.Names(), c.read, c.lost)
			}
			if c.note == "" {
				return
			}
			_, _, err = Ramp(path, c.read, 50)
			if err == nil || !strings.Contains(err.Error(), c.note) {
				t.Errorf("Ramp: %v; want it refused with the note", err)
			}
			if b, _ := os.ReadFile(path); string(b) != c.content {
				t.Errorf("Ramp changed the file:\n%s", b)
			}
		})
	}
}

// A flag defined in two "flags" objects is placed, and its problems
// named, at the definition in the object flagd reads, which need not be
// the last in the file: "flags" is read over a later "Flags". Pointing at
// the other sent the operator to fix a definition that changes nothing.
func TestLineOfAFlagInTwoObjectsIsTheOneRead(t *testing.T) {
	t.Parallel()
	f, err := Load(writeFlags(t, t.TempDir(), "{\n"+
		"\"flags\": {\"p\": {\"state\":\"ENABLED\",\"variants\":{\"on\":20},\"defaultVariant\":\"on\"}},\n"+
		"\"Flags\": {\"p\": {\"state\":\"ENABLED\",\"variants\":{\"on\":10},\"defaultVariant\":\"on\"}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Line("p"); got != 2 {
		t.Errorf("Line = %d, want 2, the definition flagd reads", got)
	}
	err = f.CheckPercent("p")
	if !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), "(lines 2, 3): the one at line 2 counts") {
		t.Errorf("CheckPercent = %v; want the duplicate named, line 2 in force", err)
	}
}

// A change to such a file is applied (flagd would apply it) and the log
// says what it holds.
func TestReloadOfTwoFlagsObjectsIsLogged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFlags(t, dir, flagFile("10"))
	var mu sync.Mutex
	var logged strings.Builder
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	})
	var changes atomic.Int32
	s, err := Open(context.Background(), Options{File: path, Logger: slog.New(slog.NewTextHandler(w, nil)),
		OnChange: func() { changes.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	writeFlags(t, dir, "{\"flags\": {},\n"+strings.TrimPrefix(flagFile("20"), "{"))
	eventually(t, "the change applied", func() bool { return changes.Load() > 0 })
	if v, err := s.Flag("orders").Current(); err != nil || v != 20 {
		t.Errorf("orders: %v, %v; want 20", v, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), `the file has 2 \"flags\" objects (lines 1, 2)`) {
		t.Errorf("the log does not say the file has two flags objects:\n%s", logged.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Finding where a flag file defines its flags costs in proportion to its
// size: the lines were counted from the file's start for each flag, so
// 60,000 flags took 5 s on every load (a review). Four times the flags
// must cost about four times as much; the ratio is of two measures taken
// in one run, each the best of three.
func TestLoadWorkIsLinearInTheFlags(t *testing.T) {
	build := func(n int) []byte {
		var b strings.Builder
		b.WriteString("{\"flags\": {\n")
		for i := range n {
			if i > 0 {
				b.WriteString(",\n")
			}
			fmt.Fprintf(&b, `"f%d": {"state": "ENABLED", "variants": {"on": 1}, "defaultVariant": "on"}`, i)
		}
		b.WriteString("\n}}\n")
		return []byte(b.String())
	}
	cost := func(n int) time.Duration {
		raw := build(n)
		best := time.Duration(math.MaxInt64)
		for range 3 {
			start := time.Now()
			seen, _, _ := flagDefinitions(raw) // where the lines are counted
			best = min(best, time.Since(start))
			if len(seen) != n {
				t.Fatalf("%d flags found of %d", len(seen), n)
			}
		}
		return best
	}
	small, large := cost(10000), cost(40000)
	// About 4.2 here, and 9.7 before the fix: the linear part (decoding
	// the JSON) hides much of the quadratic one at these sizes.
	if ratio := float64(large) / float64(small); ratio > 7 {
		t.Errorf("4 times the flags cost %.1f times as much (%v, %v): quadratic", ratio, small, large)
	}
}
