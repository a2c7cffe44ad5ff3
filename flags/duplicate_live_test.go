package flags

import (
	"errors"
	"testing"
)

// TestDuplicateWithAnUnusableDefinitionInForce: a flag defined twice
// whose definition in force (the last) is out of range keeps its route on
// the monolith; CheckPercent says that first (ErrRange), what the route
// does, not only that the flag is defined twice.
func TestDuplicateWithAnUnusableDefinitionInForce(t *testing.T) {
	t.Parallel()
	path := writeFlags(t, t.TempDir(), `{"flags":{"p":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"},
  "p":{"state":"ENABLED","variants":{"on":150},"defaultVariant":"on"}}}`)
	s, _ := open(t, path) // fails the test if Open refuses a file flagd accepts
	if _, err := s.Flag("p").Current(); !errors.Is(err, ErrRange) {
		t.Errorf("live flag error %v, want ErrRange", err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CheckPercent("p"); !errors.Is(err, ErrRange) {
		t.Errorf("CheckPercent: %v, want ErrRange first", err)
	}
}
