package flags

import (
	"context"
	"errors"
	"testing"
)

// A flag removed from the file must go to ErrNotFound (monolith), and come
// back on the same handle.
func TestFlagsRemovedFlagIsNotFound(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	two := `{"flags":{"orders":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"},` +
		`"pay":{"state":"ENABLED","variants":{"on":30},"defaultVariant":"on"}}}`
	s, _ := open(t, writeFlags(t, dir, two))
	f := s.Flag("pay")
	if !percentIs(f, 30)() {
		t.Fatal("initial")
	}
	writeFlags(t, dir, flagFile("10"))
	eventually(t, "pay gone", func() bool {
		_, err := f.Percent(context.Background(), "k", Attrs{})
		return errors.Is(err, ErrNotFound)
	})
	writeFlags(t, dir, two)
	eventually(t, "pay back", percentIs(f, 30))
}

// Non-number, out of range, -0 and rollback to 0 on the cached path.
func TestFlagsBadValuesThenRollback(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := open(t, writeFlags(t, dir, flagFile("10")))
	f := s.Flag("orders")
	for _, tc := range []struct {
		v    string
		want error
	}{{`"abc"`, ErrType}, {`150`, ErrRange}, {`-1`, ErrRange}, {`true`, ErrType}, {`null`, ErrType}} {
		writeFlags(t, dir, flagFile(tc.v))
		eventually(t, tc.v, func() bool {
			_, err := f.Percent(context.Background(), "k", Attrs{})
			return errors.Is(err, tc.want)
		})
		writeFlags(t, dir, flagFile("0"))
		eventually(t, "rollback to 0 after "+tc.v, percentIs(f, 0))
	}
	writeFlags(t, dir, flagFile("-0"))
	eventually(t, "-0", func() bool {
		v, err := f.Percent(context.Background(), "k", Attrs{})
		return err == nil && v == 0
	})
}

// A flag file with a flagSetId (what flagd's flag sets use) still evaluates.
func TestFlagsFlagSetID(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := open(t, writeFlags(t, dir, `{"metadata":{"flagSetId":"shop"},"flags":{"orders":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"}}}`))
	f := s.Flag("orders")
	if v, err := f.Percent(context.Background(), "k", Attrs{}); v != 10 || err != nil {
		t.Fatalf("flagSetId file: %v %v", v, err)
	}
	// flagSetId changes: old set's flag must not linger, new one is live.
	writeFlags(t, dir, `{"metadata":{"flagSetId":"shop2"},"flags":{"orders":{"state":"ENABLED","variants":{"on":20},"defaultVariant":"on"}}}`)
	eventually(t, "new flag set", percentIs(f, 20))
	writeFlags(t, dir, `{"flags":{"orders":{"state":"ENABLED","variants":{"on":30},"defaultVariant":"on","metadata":{"flagSetId":"x"}},"pay":{"state":"ENABLED","variants":{"on":40},"defaultVariant":"on"}}}`)
	eventually(t, "per-flag set", percentIs(f, 30))
	if !percentIs(s.Flag("pay"), 40)() {
		v, err := s.Flag("pay").Percent(context.Background(), "k", Attrs{})
		t.Fatalf("pay: %v %v", v, err)
	}
}
