// Package config reads the YAML configuration of `parkinglot serve`: the
// listen address, the store, bearer tokens and pools. Parsing is strict
// (unknown or repeated keys are errors), defaults are documented on each
// field, and every error names the field at fault as a path such as
// pools[1].capacity.
package config
