package cli

// Output of serbero ctl: every command prints exactly one document, as a
// table (lists) or a description (one object), or as one JSON or YAML
// document (-o json|yaml).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Output formats of -o.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

func validFormat(f string) bool { return f == formatTable || f == formatJSON || f == formatYAML }

// field is one named part of a document.
type field struct {
	key string
	// val is a proto.Message, a []proto.Message (a list part, [] when
	// empty), a doc (a nested object) or anything encoding/json marshals.
	val any
}

// doc is a JSON object with its keys in order: the document of a command
// made of several parts (disputes get, for one).
type doc []field

// protoJSON marshals messages as the APIs define them (lowerCamelCase
// names, enums by name, 64-bit integers as strings).
var protoJSON = protojson.MarshalOptions{}

func marshalPart(v any) ([]byte, error) {
	switch v := v.(type) {
	case proto.Message:
		return protoJSON.Marshal(v)
	case []proto.Message:
		var b bytes.Buffer
		b.WriteByte('[')
		for i, m := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			mb, err := protoJSON.Marshal(m)
			if err != nil {
				return nil, err
			}
			b.Write(mb)
		}
		b.WriteByte(']')
		return b.Bytes(), nil
	case doc:
		var b bytes.Buffer
		b.WriteByte('{')
		for i, f := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, err := json.Marshal(f.key)
			if err != nil {
				return nil, err
			}
			vb, err := marshalPart(f.val)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.key, err)
			}
			b.Write(kb)
			b.WriteByte(':')
			b.Write(vb)
		}
		b.WriteByte('}')
		return b.Bytes(), nil
	default:
		return json.Marshal(v)
	}
}

// messages turns a typed list into a list part.
func messages[M proto.Message](ms []M) []proto.Message {
	out := make([]proto.Message, 0, len(ms))
	for _, m := range ms {
		out = append(out, m)
	}
	return out
}

// writeDocument writes v (a proto.Message or a doc) as one JSON or YAML
// document.
func writeDocument(w io.Writer, format string, v any) error {
	raw, err := marshalPart(v)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	switch format {
	case formatYAML:
		y, err := jsonToYAML(raw)
		if err != nil {
			return err
		}
		_, err = w.Write(y)
		return err
	default:
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "  "); err != nil {
			return fmt.Errorf("encode output: %w", err)
		}
		b.WriteByte('\n')
		_, err = w.Write(b.Bytes())
		return err
	}
}

// jsonToYAML re-encodes a JSON document as block-style YAML, keeping the
// order of its keys.
func jsonToYAML(raw []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	var plain func(*yaml.Node)
	plain = func(n *yaml.Node) {
		n.Style = 0
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	return b.Bytes(), nil
}

// table is a table with a header row, for the table format.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// write prints the table with aligned columns; indent prefixes every line.
func (t *table) write(w io.Writer, indent string) error {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, indent+strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		for i := range r {
			r[i] = cell(r[i])
		}
		fmt.Fprintln(tw, indent+strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// cell makes s fit one table cell: one line, no tabs, "-" when empty.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	return s
}

// short cuts s to at most n characters for a table cell (at a character
// boundary, never inside one), on one line.
func short(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// describe writes m's populated fields as "name: value" lines, in
// declaration order, nested messages indented below their name.
func describe(w io.Writer, m proto.Message, indent string) error {
	var err error
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := indent + string(fd.Name()) + ":"
		switch {
		case fd.IsList():
			l := v.List()
			if fd.Message() != nil {
				_, err = fmt.Fprintln(w, name)
				for i := 0; i < l.Len() && err == nil; i++ {
					_, err = fmt.Fprintf(w, "%s  - #%d\n", indent, i+1)
					if err == nil {
						err = describe(w, l.Get(i).Message().Interface(), indent+"    ")
					}
				}
				return err == nil
			}
			vals := make([]string, 0, l.Len())
			for i := range l.Len() {
				vals = append(vals, scalar(fd, l.Get(i)))
			}
			_, err = fmt.Fprintln(w, name, strings.Join(vals, ", "))
		case fd.IsMap():
			_, err = fmt.Fprintln(w, name, "(map)")
		case fd.Message() != nil && fd.Message().FullName() != "google.protobuf.Timestamp":
			if _, err = fmt.Fprintln(w, name); err == nil {
				err = describe(w, v.Message().Interface(), indent+"  ")
			}
		default:
			_, err = fmt.Fprintln(w, name, scalar(fd, v))
		}
		return err == nil
	})
	return err
}

// scalar formats one non-list value for a description or a table.
func scalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch {
	case fd.Enum() != nil:
		ev := fd.Enum().Values().ByNumber(v.Enum())
		if ev == nil {
			return strconv.Itoa(int(v.Enum()))
		}
		return enumName(string(fd.Enum().Name()), string(ev.Name()))
	case fd.Message() != nil:
		if ts, ok := v.Message().Interface().(*timestamppb.Timestamp); ok {
			return tsText(ts)
		}
		return v.String()
	case fd.Kind() == protoreflect.StringKind:
		if v.String() == "" {
			return "-"
		}
		return v.String()
	default:
		return v.String()
	}
}

// enumName turns LIFECYCLE_STATE_NOTIFIED (of enum LifecycleState) into
// notified: the value without its enum's prefix, as the command-line flags
// spell it.
func enumName(enum, value string) string {
	var prefix strings.Builder
	for i, r := range enum {
		if i > 0 && r >= 'A' && r <= 'Z' {
			prefix.WriteByte('_')
		}
		prefix.WriteRune(r)
	}
	return strings.ToLower(strings.TrimPrefix(value, strings.ToUpper(prefix.String())+"_"))
}

func stateName(enum, prefix string) string { return strings.ToLower(strings.TrimPrefix(enum, prefix)) }

func tsText(t *timestamppb.Timestamp) string {
	if t == nil || (t.GetSeconds() == 0 && t.GetNanos() == 0) {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

// section writes a titled part of a description: the table, or "(none)".
func section(w io.Writer, title string, t *table) error {
	if _, err := fmt.Fprintf(w, "\n%s:\n", title); err != nil {
		return err
	}
	if len(t.rows) == 0 {
		_, err := fmt.Fprintln(w, "  (none)")
		return err
	}
	return t.write(w, "  ")
}

func newTabWriter(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }
