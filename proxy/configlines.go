package proxy

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// withLines says where in the config file each of problems is: Validate and
// Check judge decoded values, which carry no position, so their problems
// name a key path only ("routes[37].shadow.ignore_json[2]"), and an operator
// with a long file at 3 AM counts list entries by hand. Each problem that
// starts with a path the file holds gets " (line N)"; one whose key is not
// there (a required key) gets the line of the nearest entry that is, as
// " (in routes[2], line 14)". raw is parsed again, on this error path only,
// rather than kept as a tree for the config's life. Problems that name no
// place in the file are returned as they are.
func withLines(raw []byte, problems []string) []string {
	if len(problems) == 0 || len(raw) == 0 {
		return problems
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(raw)).Decode(&doc); err != nil || len(doc.Content) == 0 {
		return problems
	}
	out := make([]string, len(problems))
	idx := keyIndex{}
	for i, p := range problems {
		out[i] = p + placeOf(doc.Content[0], problemPath(p), idx)
	}
	return out
}

// keyIndex holds, for each mapping looked into, its keys (the first of a
// key given twice) and its merge key's value: a lookup per problem that
// scanned the mapping made a file of many keys and many problems
// quadratic (40,000 of each took minutes).
type keyIndex map[*yaml.Node]*mappingKeysAt

type mappingKeysAt struct {
	keys  map[string]keyAt
	merge *yaml.Node // the value of <<, nil without one
}

type keyAt struct {
	value *yaml.Node
	line  int
}

func (idx keyIndex) of(m *yaml.Node) *mappingKeysAt {
	if k, ok := idx[m]; ok {
		return k
	}
	k := &mappingKeysAt{keys: make(map[string]keyAt, len(m.Content)/2)}
	for i := 0; i+1 < len(m.Content); i += 2 {
		switch kn := m.Content[i]; {
		case isMergeKey(kn):
			if k.merge == nil {
				k.merge = deref(m.Content[i+1])
			}
		default:
			if _, dup := k.keys[kn.Value]; !dup {
				k.keys[kn.Value] = keyAt{m.Content[i+1], kn.Line}
			}
		}
	}
	idx[m] = k
	return k
}

// problemPath is the key path a problem starts with: keys apart by dots,
// list indexes in brackets, up to the ": " or " " that ends it.
func problemPath(p string) string {
	end := strings.IndexAny(p, ": ")
	if end < 0 {
		return ""
	}
	return p[:end]
}

// placeOf is the note withLines adds for path in the document whose top
// value is root: "" when not even its first key is in the file.
func placeOf(root *yaml.Node, path string, idx keyIndex) string {
	n, found, line := root, "", 0
	rest := path
	for rest != "" {
		n = deref(n)
		var step string
		var next *yaml.Node
		var at int
		if rest[0] == '[' {
			j := strings.IndexByte(rest, ']')
			if j < 0 {
				break
			}
			idx, err := strconv.Atoi(rest[1:j])
			if err != nil || n.Kind != yaml.SequenceNode || idx < 0 || idx >= len(n.Content) {
				break
			}
			step, next = rest[:j+1], n.Content[idx]
			at = next.Line
		} else {
			key := strings.TrimPrefix(rest, ".")
			if key == rest && found != "" {
				break // neither a key nor an index
			}
			if j := strings.IndexAny(key, ".["); j >= 0 {
				key = key[:j]
			}
			if key == "" || n.Kind != yaml.MappingNode {
				break
			}
			budget := 1000
			next, at = idx.lookup(n, key, &budget)
			if next == nil {
				break
			}
			step = rest[:len(rest)-len(strings.TrimPrefix(rest, "."))+len(key)]
		}
		if next.Kind == yaml.AliasNode {
			// Where the value is written, as the problems of shape
			// say: the anchor's line, not the alias's.
			at = deref(next).Line
		}
		found += step
		rest = rest[len(step):]
		n, line = next, at
	}
	switch {
	case found == "" || line == 0:
		return ""
	case rest == "":
		return fmt.Sprintf(" (line %d)", line)
	}
	return fmt.Sprintf(" (in %s, line %d)", found, line)
}

// lookup finds key in mapping m as the decoder does: the first of a key
// given twice (the one checkShape keeps; the second is refused with both
// lines), else through m's merge key, the first mapping merged that has
// it. It returns the value and the key's line, or nil. budget bounds the
// mappings it visits: merges of merges of aliases can name exponentially
// many.
func (idx keyIndex) lookup(m *yaml.Node, key string, budget *int) (*yaml.Node, int) {
	if *budget--; *budget < 0 {
		return nil, 0
	}
	k := idx.of(m)
	if v, ok := k.keys[key]; ok {
		return v.value, v.line
	}
	if k.merge == nil {
		return nil, 0
	}
	list := []*yaml.Node{k.merge}
	if k.merge.Kind == yaml.SequenceNode {
		list = k.merge.Content
	}
	for _, d := range list {
		if d = deref(d); d.Kind == yaml.MappingNode {
			if v, line := idx.lookup(d, key, budget); v != nil {
				return v, line
			}
		}
	}
	return nil, 0
}

// deref follows an alias to the value it names (where that value is
// written, which is where an operator fixes it).
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}
