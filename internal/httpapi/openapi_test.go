package httpapi_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
)

const openapiPath = "../../api/openapi.yaml"

func loadSpec(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(openapiPath)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(data, &doc))
	return doc
}

func child(t *testing.T, v any, keys ...string) map[string]any {
	t.Helper()
	for _, k := range keys {
		m, ok := v.(map[string]any)
		require.True(t, ok, "%q is not a map", k)
		v = m[k]
	}
	m, ok := v.(map[string]any)
	require.True(t, ok, "%v is not a map", keys)
	return m
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// TestOpenAPIRoutes: the document lists exactly the routes the handler
// serves, each with its path parameters and its responses.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	require.Equal(t, "3.1.0", doc["openapi"])
	var documented []string
	for path, item := range child(t, doc, "paths") {
		ops := item.(map[string]any)
		declared := map[string]bool{}
		for _, p := range asList(ops["parameters"]) {
			declared[paramName(t, doc, p)] = true
		}
		for key, op := range ops {
			if !slices.Contains(httpMethods, key) {
				require.Equal(t, "parameters", key, "path %s", path)
				continue
			}
			documented = append(documented, strings.ToUpper(key)+" "+path)
			opm := op.(map[string]any)
			params := map[string]bool{}
			for k := range declared {
				params[k] = true
			}
			for _, p := range asList(opm["parameters"]) {
				params[paramName(t, doc, p)] = true
			}
			for _, seg := range strings.Split(path, "/") {
				if name, ok := strings.CutPrefix(seg, "{"); ok {
					require.True(t, params[strings.TrimSuffix(name, "}")], "%s %s does not declare %s", key, path, seg)
				}
			}
			resp := child(t, opm, "responses")
			ok2xx := false
			for code := range resp {
				ok2xx = ok2xx || strings.HasPrefix(code, "2")
			}
			require.True(t, ok2xx, "%s %s has no 2xx response", key, path)
			require.Contains(t, resp, "401", "%s %s", key, path)
			require.Contains(t, resp, "500", "%s %s", key, path)
			require.NotEmpty(t, opm["operationId"], "%s %s", key, path)
		}
	}
	var keys []string
	for _, rt := range httpapi.Routes() {
		keys = append(keys, rt.Key())
	}
	require.ElementsMatch(t, keys, documented)
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// paramName resolves a parameter object or its $ref to its name.
func paramName(t *testing.T, doc map[string]any, p any) string {
	t.Helper()
	m := p.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		m = resolve(t, doc, ref).(map[string]any)
	}
	name, _ := m["name"].(string)
	require.NotEmpty(t, name, "parameter %v", p)
	return name
}

func resolve(t *testing.T, doc map[string]any, ref string) any {
	t.Helper()
	ptr, ok := strings.CutPrefix(ref, "#/")
	require.True(t, ok, "only local refs: %s", ref)
	var v any = doc
	for _, k := range strings.Split(ptr, "/") {
		m, ok := v.(map[string]any)
		require.True(t, ok, "ref %s", ref)
		v, ok = m[k]
		require.True(t, ok, "ref %s does not resolve", ref)
	}
	return v
}

// TestOpenAPIRefsResolve: every $ref points at something.
func TestOpenAPIRefsResolve(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	n := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				resolve(t, doc, ref)
				n++
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	require.Greater(t, n, 50)
}

// TestOpenAPISchemas: each schema has exactly the JSON fields of its wire
// type, and required fields are properties.
func TestOpenAPISchemas(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	schemas := child(t, doc, "components", "schemas")
	for name, typ := range map[string]reflect.Type{
		"Task": reflect.TypeFor[api.Task](), "TaskBody": reflect.TypeFor[api.TaskBody](),
		"SubmitRequest": reflect.TypeFor[api.SubmitRequest](), "HeartbeatRequest": reflect.TypeFor[api.HeartbeatRequest](),
		"HeartbeatResponse": reflect.TypeFor[api.HeartbeatResponse](), "CompleteRequest": reflect.TypeFor[api.CompleteRequest](),
		"AckRequest": reflect.TypeFor[api.AckRequest](), "Message": reflect.TypeFor[api.Message](),
		"MailboxPage": reflect.TypeFor[api.MailboxPage](), "Event": reflect.TypeFor[api.Event](),
		"AuditPage": reflect.TypeFor[api.AuditPage](), "Pool": reflect.TypeFor[api.Pool](),
		"PoolList": reflect.TypeFor[api.PoolList](), "Error": reflect.TypeFor[api.Error](),
		"ErrorDetail": reflect.TypeFor[api.ErrorDetail](), "ClaimRequest": reflect.TypeFor[api.ClaimRequest](),
		"ClaimResponse": reflect.TypeFor[api.ClaimResponse](), "CompleteNextResponse": reflect.TypeFor[api.CompleteNextResponse](),
		"PushedTask": reflect.TypeFor[api.PushedTask](), "PushOutcome": reflect.TypeFor[api.PushOutcome](),
	} {
		s := child(t, schemas, name)
		props := child(t, s, "properties")
		var want, got []string
		for i := range typ.NumField() {
			tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			want = append(want, tag)
		}
		for k := range props {
			got = append(got, k)
		}
		require.ElementsMatch(t, want, got, "schema %s", name)
		for _, r := range asList(s["required"]) {
			require.Contains(t, props, r, "schema %s requires %v", name, r)
		}
	}
}

// TestOpenAPITaskResponses: submit answers a TaskBody ({"task": Task}) and
// its 429 an Error with the task; reading, completing and cancelling a task
// answer the bare Task.
func TestOpenAPITaskResponses(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	paths := child(t, doc, "paths")
	for _, c := range []struct{ path, method, code, schema string }{
		{"/v1/pools/{pool}/tasks", "post", "201", "TaskBody"},
		{"/v1/pools/{pool}/tasks", "post", "200", "TaskBody"},
		{"/v1/pools/{pool}/tasks", "post", "429", "Error"},
		{"/v1/tasks/{id}", "get", "200", "Task"},
		{"/v1/tasks/{id}/cancel", "post", "200", "Task"},
	} {
		s := child(t, paths, c.path, c.method, "responses", c.code, "content", "application/json", "schema")
		require.Equal(t, "#/components/schemas/"+c.schema, s["$ref"], "%s %s %s", c.method, c.path, c.code)
	}
	// A completion answers the bare Task, or with next the task and the next
	// ones.
	s := child(t, paths, "/v1/tasks/{id}/complete", "post", "responses", "200", "content", "application/json", "schema")
	var refs []string
	for _, alt := range asList(s["oneOf"]) {
		refs = append(refs, alt.(map[string]any)["$ref"].(string))
	}
	require.Equal(t, []string{"#/components/schemas/Task", "#/components/schemas/CompleteNextResponse"}, refs)
}

// TestOpenAPIEnums: the enums list exactly the constants of the code.
func TestOpenAPIEnums(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	schemas := child(t, doc, "components", "schemas")
	enum := func(name string) []string {
		var out []string
		for _, v := range asList(child(t, schemas, name)["enum"]) {
			out = append(out, v.(string))
		}
		return out
	}
	require.ElementsMatch(t, stringConsts(t, "../../pkg/api/types.go", "Code"), enum("ErrorCode"))
	states := stringConsts(t, "../../pkg/core/task.go", "State")
	require.ElementsMatch(t, states, enum("State"))
	var outcomes []string
	for _, s := range states {
		if s != "parked" && s != "running" {
			outcomes = append(outcomes, s)
		}
	}
	require.ElementsMatch(t, append(stringConsts(t, "../../pkg/core/task.go", "Message"), outcomes...), enum("MessageType"))
	require.ElementsMatch(t, stringConsts(t, "../../pkg/core/task.go", "Event"), enum("EventType"))
	var executors []string
	for _, v := range asList(child(t, schemas, "Pool", "properties", "executor")["enum"]) {
		executors = append(executors, v.(string))
	}
	require.ElementsMatch(t, stringConsts(t, "../../pkg/core/pool.go", "Executor"), executors)
}

// stringConsts reads the string constants named prefix* declared in file.
func stringConsts(t *testing.T, file, prefix string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	require.NoError(t, err)
	var out []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, prefix) || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				out = append(out, v)
			}
		}
	}
	require.NotEmpty(t, out, "no %s* constants in %s", prefix, file)
	return out
}
