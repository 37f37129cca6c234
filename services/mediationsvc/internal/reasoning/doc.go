// Package reasoning is the boundary between mediation and the language
// model: the Provider interface (Classify, Summarize, HealthCheck), its
// request and response types, the typed errors with their five categories,
// the prompt builders both adapters share, and the parsers of the model's
// answers. Adapters live in subpackages (openai, anthropic) and are chosen
// by configuration alone (providers.Build); call sites never switch on the
// provider. See docs/mediation.md#reasoning.
package reasoning
