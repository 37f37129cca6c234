// Package testkit is the project's shared test kit (see the module doc).
package testkit
