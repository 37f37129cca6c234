package ociimage

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Stage is what the last stage of a Dockerfile says about the final image:
// the instructions deploy/ociimage reproduces without a container engine.
type Stage struct {
	// From is the base image of the stage.
	From string
	// Copies are the stage's COPY instructions (source, destination); only
	// --from=<stage> copies of single files are supported.
	Copies [][2]string
	// User, Entrypoint, Cmd, Env and Labels are the image config's.
	User       string
	Entrypoint []string
	Cmd        []string
	Env        []string
	Labels     map[string]string
}

// ReadDockerfile parses the last stage of the Dockerfile at path, with the
// build arguments args (an ARG without a value here takes its default).
func ReadDockerfile(path string, args map[string]string) (Stage, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stage{}, err
	}
	defer f.Close()
	return ParseDockerfile(f, args)
}

// ParseDockerfile is ReadDockerfile on a reader. It understands the
// instructions of a final stage that copies a binary from a build stage:
// FROM, ARG, LABEL, COPY, USER, ENV, ENTRYPOINT, CMD (exec form), and
// refuses others (RUN, ADD, …), which would need an engine.
func ParseDockerfile(r io.Reader, args map[string]string) (Stage, error) {
	ins, err := instructions(r)
	if err != nil {
		return Stage{}, err
	}
	last := -1
	for i, in := range ins {
		if strings.EqualFold(in[0], "FROM") {
			last = i
		}
	}
	if last < 0 {
		return Stage{}, errors.New("no FROM in the Dockerfile")
	}
	st := Stage{Labels: map[string]string{}}
	vars := map[string]string{}
	for _, in := range ins[last:] {
		op, rest := strings.ToUpper(in[0]), in[1]
		switch op {
		case "FROM":
			f := strings.Fields(rest)
			if len(f) == 0 {
				return Stage{}, errors.New("FROM without an image")
			}
			st.From = f[len(f)-1]
			for i, w := range f {
				if strings.EqualFold(w, "AS") && i > 0 {
					st.From = f[i-1]
					break
				}
			}
			if strings.HasPrefix(st.From, "--") {
				return Stage{}, fmt.Errorf("FROM %s: no image", rest)
			}
		case "ARG":
			name, def, _ := strings.Cut(rest, "=")
			v, ok := args[name]
			if !ok {
				v = unquote(def)
			}
			vars[name] = v
		case "LABEL", "ENV":
			kvs, err := keyValues(rest)
			if err != nil {
				return Stage{}, fmt.Errorf("%s %s: %w", op, rest, err)
			}
			for _, kv := range kvs {
				v := expand(kv[1], vars)
				if op == "LABEL" {
					st.Labels[kv[0]] = v
				} else {
					st.Env = append(st.Env, kv[0]+"="+v)
				}
			}
		case "COPY":
			f := strings.Fields(rest)
			if len(f) != 3 || !strings.HasPrefix(f[0], "--from=") {
				return Stage{}, fmt.Errorf("COPY %s: only COPY --from=<stage> SRC DST is supported", rest)
			}
			st.Copies = append(st.Copies, [2]string{f[1], f[2]})
		case "USER":
			st.User = expand(rest, vars)
		case "ENTRYPOINT", "CMD":
			var argv []string
			if err := json.Unmarshal([]byte(rest), &argv); err != nil {
				return Stage{}, fmt.Errorf("%s %s: only the exec (JSON) form is supported", op, rest)
			}
			if op == "ENTRYPOINT" {
				st.Entrypoint = argv
			} else {
				st.Cmd = argv
			}
		default:
			return Stage{}, fmt.Errorf("final stage: %s is not supported without a container engine", op)
		}
	}
	return st, nil
}

// instructions returns each instruction as (keyword, rest), continuation
// lines joined, comments and blank lines dropped.
func instructions(r io.Reader) ([][2]string, error) {
	var out [][2]string
	cur := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cur = strings.TrimSpace(cur + line)
		if cur != "" {
			kw, rest, _ := strings.Cut(cur, " ")
			out = append(out, [2]string{kw, strings.TrimSpace(rest)})
		}
		cur = ""
	}
	return out, sc.Err()
}

// keyValues splits `k="v w" k2=v2` into pairs.
func keyValues(s string) ([][2]string, error) {
	var out [][2]string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("want KEY=VALUE at %q", s)
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := 1
			for end < len(s) && (s[end] != '"' || s[end-1] == '\\') {
				end++
			}
			if end == len(s) {
				return nil, errors.New("unterminated quote")
			}
			val = strings.ReplaceAll(s[1:end], `\"`, `"`)
			s = s[end+1:]
		} else {
			val, s, _ = strings.Cut(s, " ")
		}
		out = append(out, [2]string{key, val})
	}
	return out, nil
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expand replaces ${NAME} and $NAME with the stage's ARG values.
func expand(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		return vars[name]
	})
}
