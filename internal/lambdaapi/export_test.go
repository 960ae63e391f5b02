package lambdaapi

// WithDefaultKey exposes withDefaultKey to the tests.
var WithDefaultKey = withDefaultKey
