{{/*
A small TOML writer for .Values.config. Helm's own toToml turns every number
into a float (300 becomes 300.0), which Serbero's integer keys reject, so the
chart writes the file itself. Shape supported (the shape of config.toml):
  section = { key = scalar | list of scalars }   ->  [section] / key = value
  name    = [ { key = scalar }, ... ]            ->  [[name]] per element
  name    = []                                   ->  name = []
*/}}

{{/* One TOML value: a string, boolean, integer (floats that are whole numbers too) or a list of those. */}}
{{- define "serbero.tomlValue" -}}
{{- if kindIs "string" . }}
{{- toJson . }}
{{- else if kindIs "bool" . }}
{{- ternary "true" "false" . }}
{{- else if kindIs "float64" . }}
{{- if eq (floor .) . }}{{ printf "%d" (int64 .) }}{{ else }}{{ printf "%v" . }}{{ end }}
{{- else if or (kindIs "int" .) (kindIs "int64" .) }}
{{- printf "%d" . }}
{{- else if kindIs "slice" . }}
{{- $items := list }}
{{- range . }}{{ $items = append $items (include "serbero.tomlValue" .) }}{{ end }}
{{- printf "[%s]" (join ", " $items) }}
{{- else }}
{{- fail (printf "config: cannot write %v (%s) as a TOML value" . (kindOf .)) }}
{{- end }}
{{- end }}

{{/* The key/value lines of one table. */}}
{{- define "serbero.tomlTable" -}}
{{- range $k := keys . | sortAlpha }}
{{- $v := index $ $k }}
{{- if kindIs "map" $v }}
{{- fail (printf "config: nested table %q is not supported (config.toml has one level of sections)" $k) }}
{{- end }}
{{- if not (kindIs "invalid" $v) }}
{{ $k }} = {{ include "serbero.tomlValue" $v }}
{{- end }}
{{- end }}
{{- end }}

{{/* A whole document from a map of sections and arrays of tables. */}}
{{- define "serbero.toml" -}}
{{- $doc := . }}
{{- range $k := keys $doc | sortAlpha }}
{{- $v := index $doc $k }}
{{- if and (kindIs "slice" $v) (empty $v) }}
{{ $k }} = []
{{- else if not (or (kindIs "map" $v) (kindIs "slice" $v) (kindIs "invalid" $v)) }}
{{- fail (printf "config.%s: top-level keys must be sections or arrays of tables" $k) }}
{{- end }}
{{- end }}
{{- range $k := keys $doc | sortAlpha }}
{{- $v := index $doc $k }}
{{- if kindIs "map" $v }}

[{{ $k }}]
{{- include "serbero.tomlTable" $v }}
{{- else if and (kindIs "slice" $v) (not (empty $v)) }}
{{- range $item := $v }}
{{- if not (kindIs "map" $item) }}
{{- fail (printf "config.%s: every element must be a table" $k) }}
{{- end }}

[[{{ $k }}]]
{{- include "serbero.tomlTable" $item }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
