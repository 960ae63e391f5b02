package parkinglot_test

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/infra/cdk/parkinglot"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
)

// zips writes placeholder zips of the four functions (synthesis depends on
// a zip's hash only) and returns their directory.
func zips(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range parkinglot.Functions {
		out, err := os.Create(filepath.Join(dir, string(f)+".zip"))
		require.NoError(t, err)
		z := zip.NewWriter(out)
		h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: time.Unix(0, 0)}
		h.SetMode(0o755)
		w, err := z.CreateHeader(h)
		require.NoError(t, err)
		_, err = w.Write([]byte("#!/bin/sh\n# " + string(f) + "\nexit 1\n"))
		require.NoError(t, err)
		require.NoError(t, z.Close())
		require.NoError(t, out.Close())
	}
	return dir
}

func TestPropsValidateNamesTheField(t *testing.T) {
	t.Parallel()
	good := parkinglot.Props{
		Pools:       []parkinglot.Pool{{Name: "gpu", Capacity: 4, MaxParked: 10}},
		JWTIssuer:   "https://issuer.example.com/",
		JWTAudience: []string{"parkinglot"},
		LambdaDir:   zips(t),
	}
	require.NoError(t, good.WithDefaults().Validate())
	for field, edit := range map[string]func(*parkinglot.Props){
		"Pools[0]: ":                   func(p *parkinglot.Props) { p.Pools = []parkinglot.Pool{{Name: "gpu"}} },
		"Pools[0]: invalid slotShards": func(p *parkinglot.Props) { p.Pools = []parkinglot.Pool{{Name: "gpu", Capacity: 4, SlotShards: 5}} },
		"Functions[dispatch].Timeout": func(p *parkinglot.Props) {
			p.Functions = map[parkinglot.Function]parkinglot.FunctionProps{parkinglot.Dispatch: {Timeout: 31 * time.Second}}
		},
		"Functions[expire].Timeout": func(p *parkinglot.Props) {
			p.Functions = map[parkinglot.Function]parkinglot.FunctionProps{parkinglot.Expire: {Timeout: 50 * time.Second}}
		},
		"Functions[submit].MemoryMB": func(p *parkinglot.Props) {
			p.Functions = map[parkinglot.Function]parkinglot.FunctionProps{parkinglot.Submit: {MemoryMB: 64}}
		},
		"Functions[mailbox].ReservedConcurrency": func(p *parkinglot.Props) {
			p.Functions = map[parkinglot.Function]parkinglot.FunctionProps{parkinglot.Mailbox: {ReservedConcurrency: -2}}
		},
		`Functions["sweep"]`: func(p *parkinglot.Props) {
			p.Functions = map[parkinglot.Function]parkinglot.FunctionProps{"sweep": {}}
		},
		`RouteThrottles["GET /v2"]`: func(p *parkinglot.Props) {
			p.RouteThrottles = map[string]parkinglot.Throttle{"GET /v2": {RateLimit: 1, BurstLimit: 1}}
		},
		`RouteThrottles["POST /v1/pools/{pool}/tasks"]`: func(p *parkinglot.Props) {
			p.RouteThrottles = map[string]parkinglot.Throttle{"POST /v1/pools/{pool}/tasks": {RateLimit: 1}}
		},
		"Pools[0].Target: executor push needs a target": func(p *parkinglot.Props) {
			p.Pools = []parkinglot.Pool{{Name: "gpu", Capacity: 4, Executor: parkinglot.ExecutorPush}}
		},
		"Pools[0].Executor: a pool with a Target pushes": func(p *parkinglot.Props) {
			p.Pools = []parkinglot.Pool{{Name: "gpu", Capacity: 4, Executor: parkinglot.ExecutorPull,
				Target: parkinglot.HTTPTarget("https://hooks.example.com/", nil, parkinglot.HTTPSync)}}
		},
		"Pools[1].Target: LambdaTarget needs a function": func(p *parkinglot.Props) {
			p.Pools = append(p.Pools, parkinglot.Pool{Name: "fn", Capacity: 1, Target: parkinglot.LambdaTarget(nil)})
		},
		"Pools[1].Target: SQSTarget needs a queue": func(p *parkinglot.Props) {
			p.Pools = append(p.Pools, parkinglot.Pool{Name: "q", Capacity: 1, Target: parkinglot.SQSTarget(nil)})
		},
		"Pools[1].Target: Qualifier applies to lambda targets only": func(p *parkinglot.Props) {
			p.Pools = append(p.Pools, parkinglot.Pool{Name: "hook", Capacity: 1,
				Target: parkinglot.HTTPTarget("https://hooks.example.com/", nil, "", parkinglot.Qualifier("live"))})
		},
		"Pools[1].Target: invalid target.mode": func(p *parkinglot.Props) {
			p.Pools = append(p.Pools, parkinglot.Pool{Name: "hook", Capacity: 1,
				Target: parkinglot.HTTPTarget("https://hooks.example.com/", nil, "fast")})
		},
		"Pools[1].Target: invalid target.url": func(p *parkinglot.Props) {
			p.Pools = append(p.Pools, parkinglot.Pool{Name: "hook", Capacity: 1,
				Target: parkinglot.HTTPTarget("hooks.example.com", nil, parkinglot.HTTPSync)})
		},
		"Pools[1].Target: invalid target.maxAttempts": func(p *parkinglot.Props) {
			p.Pools = append(p.Pools, parkinglot.Pool{Name: "hook", Capacity: 1,
				Target: parkinglot.HTTPTarget("https://hooks.example.com/", nil, parkinglot.HTTPSync, parkinglot.MaxAttempts(101))})
		},
		"Pools[1].Target: invalid target.timeout": func(p *parkinglot.Props) {
			p.Pools = append(p.Pools, parkinglot.Pool{Name: "hook", Capacity: 1,
				Target: parkinglot.HTTPTarget("https://hooks.example.com/", nil, parkinglot.HTTPSync, parkinglot.DeliveryTimeout(time.Hour))})
		},
		// Lambda's 4 KB environment: 20 webhooks of 150-character URLs.
		"Pools: function submit's environment would take about": func(p *parkinglot.Props) {
			for i := range 20 {
				p.Pools = append(p.Pools, parkinglot.Pool{Name: fmt.Sprintf("hook-%02d", i), Capacity: 1,
					Target: parkinglot.HTTPTarget(fmt.Sprintf("https://hooks.example.com/%0124d", i), nil, parkinglot.HTTPSync)})
			}
		},
		"Domain":       func(p *parkinglot.Props) { p.Domain = &parkinglot.Domain{Name: "x.example.com"} },
		"JWTIssuer":    func(p *parkinglot.Props) { p.JWTIssuer = "http://issuer.example.com/" },
		"PoolsInStack": func(p *parkinglot.Props) { p.PoolsInStack = -1 },
	} {
		p := good
		edit(&p)
		require.ErrorContains(t, p.WithDefaults().Validate(), "parkinglot: "+field, field)
	}
	require.Contains(t, parkinglot.RouteKeys(), "POST /v1/pools/{pool}/tasks")
	require.Equal(t, parkinglot.DefaultPoolsInStack, good.WithDefaults().PoolsInStack)

	// A target makes a pool a push pool; an unsigned webhook is a target.
	p := good
	p.Pools = append(p.Pools, parkinglot.Pool{Name: "hook", Capacity: 1,
		Target: parkinglot.HTTPTarget("https://hooks.example.com/", nil, "")})
	require.True(t, p.Pools[1].Pushes(), "before the defaults too")
	p = p.WithDefaults()
	require.NoError(t, p.Validate())
	require.Equal(t, parkinglot.ExecutorPush, p.Pools[1].Executor)
	require.True(t, p.Pools[1].Pushes())
	require.False(t, p.Pools[0].Pushes())
}

func TestDefaultsReserveForDispatchAndExpire(t *testing.T) {
	t.Parallel()
	p := parkinglot.Props{}.WithDefaults()
	total := 0
	for _, f := range parkinglot.Functions {
		fp := p.Functions[f]
		require.Equal(t, parkinglot.DefaultFunctionProps(f), fp, f)
		if fp.ReservedConcurrency != parkinglot.Unreserved {
			total += fp.ReservedConcurrency
		}
	}
	require.Positive(t, p.Functions[parkinglot.Dispatch].ReservedConcurrency)
	require.Positive(t, p.Functions[parkinglot.Expire].ReservedConcurrency)
	// Mailbox's long polls are capped, so they cannot take every execution.
	require.Positive(t, p.Functions[parkinglot.Mailbox].ReservedConcurrency)
	// Lambda keeps 100 executions unreserved: the defaults fit the default
	// account limit of 1,000.
	require.LessOrEqual(t, total, 900)
	require.Equal(t, parkinglot.DefaultThrottle, p.Throttle)
}

// userApp builds and runs testdata/userapp, a module of its own that
// embeds the construct through this package alone (as another module, it
// could not import the repository's internal packages), and returns its
// template and the cdk-nag findings under the construct.
func userApp(t *testing.T) (tpl map[string]any, path string, findings []string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "userapp")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	build.Dir = filepath.Join("testdata", "userapp")
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building the user's app:\n%s", out)

	run := exec.Command(bin)
	run.Env = append(os.Environ(), "USERAPP_OUT="+filepath.Join(dir, "out"), "USERAPP_LAMBDA_DIR="+zips(t),
		"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20")
	var stderr strings.Builder
	run.Stderr = &stderr
	stdout, err := run.Output()
	require.NoError(t, err, "running the user's app:\n%s", stderr.String())
	var res struct {
		Template string
		Findings []string
	}
	require.NoError(t, json.Unmarshal(stdout, &res), "%s", stdout)
	b, err := os.ReadFile(res.Template)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &tpl))
	return tpl, res.Template, res.Findings
}

type resource struct {
	ID    string
	Props map[string]any
}

func ofType(tpl map[string]any, typ string) []resource {
	var out []resource
	for id, r := range tpl["Resources"].(map[string]any) {
		m := r.(map[string]any)
		if m["Type"] == typ {
			p, _ := m["Properties"].(map[string]any)
			out = append(out, resource{id, p})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func js(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func getAtt(id, attr string) map[string]any { return map[string]any{"Fn::GetAtt": []any{id, attr}} }

// TestEmbeddedInAUsersApp synthesizes a user's stack that holds its own
// key and roles and the construct with most of its props set, and checks
// that the construct's resources are there, the props honoured, the grants
// given and the construct's own resources clean of cdk-nag findings.
func TestEmbeddedInAUsersApp(t *testing.T) {
	t.Parallel()
	tpl, path, findings := userApp(t)
	require.Empty(t, findings, "cdk-nag findings on the construct's resources")
	cfnLint(t, path)

	// The user's own resources.
	keys := ofType(tpl, "AWS::KMS::Key")
	require.Len(t, keys, 2) // the data key, and the key of the sqs target's queue
	require.True(t, strings.HasPrefix(keys[0].ID, "DataKey"), keys[0].ID)
	key := getAtt(keys[0].ID, "Arn")
	roles := map[string]bool{}
	for _, r := range ofType(tpl, "AWS::IAM::Role") {
		roles[r.ID] = true
	}
	require.Contains(t, js(t, roles), "Producer")
	require.Contains(t, js(t, roles), "Worker")

	// Everything of the construct's is under its id, encrypted with the
	// user's key.
	tables := ofType(tpl, "AWS::DynamoDB::Table")
	require.Len(t, tables, 1)
	require.True(t, strings.HasPrefix(tables[0].ID, "Scheduler"), tables[0].ID)
	require.Equal(t, map[string]any{"KMSMasterKeyId": key, "SSEEnabled": true, "SSEType": "KMS"}, tables[0].Props["SSESpecification"])
	var queues []resource
	for _, q := range ofType(tpl, "AWS::SQS::Queue") {
		if strings.HasPrefix(q.ID, "Scheduler") {
			queues = append(queues, q)
		}
	}
	require.Len(t, queues, 7*2+2+2) // pools and their DLQs, submit and results queues and their DLQs
	names := map[string]bool{}
	for _, q := range queues {
		require.Equal(t, key, q.Props["KmsMasterKeyId"], q.ID)
		require.Nil(t, q.Props["SqsManagedSseEnabled"], q.ID)
		if n, ok := q.Props["QueueName"].(string); ok {
			names[n] = true
		}
	}
	want := map[string]bool{}
	for _, p := range []string{"render", "mail", "thumbs", "reports", "hooks", "jobs", "previews"} {
		want["user-"+p+".fifo"], want["user-dlq-"+p+".fifo"] = true, true
	}
	require.Equal(t, want, names)
	// EventBridge may write failed submissions into the encrypted DLQ.
	require.Contains(t, js(t, keys[0].Props["KeyPolicy"]), "events.amazonaws.com")

	// Functions: memory, timeout and reserved concurrency as asked, the
	// rest the defaults.
	fns := map[string]map[string]any{}
	for _, f := range ofType(tpl, "AWS::Lambda::Function") {
		if strings.HasPrefix(f.ID, "Scheduler") {
			fns[strings.TrimPrefix(f.Props["Description"].(string), "Parkinglot ")] = f.Props
		}
	}
	require.Len(t, fns, 4)
	wantFns := map[string][3]any{ // memory, timeout, reserved concurrency
		"submit": {256, 15, nil}, "dispatch": {512, 25, 10}, "expire": {256, 60, 2}, "mailbox": {256, 29, nil},
	}
	for f, w := range wantFns {
		require.EqualValues(t, w[0], fns[f]["MemorySize"], f)
		require.EqualValues(t, w[1], fns[f]["Timeout"], f)
		if w[2] == nil {
			require.Nil(t, fns[f]["ReservedConcurrentExecutions"], f)
		} else {
			require.EqualValues(t, w[2], fns[f]["ReservedConcurrentExecutions"], f)
		}
	}
	// The pools, in the custom resource that expire applies to the table.
	crs := ofType(tpl, lambdaapi.PoolsResourceType)
	require.Len(t, crs, 1)
	require.Equal(t, getAtt(idOf(t, tpl, "AWS::Lambda::Function", "SchedulerFnexpire"), "Arn"), crs[0].Props["ServiceToken"])
	var pools []map[string]any
	require.NoError(t, json.Unmarshal([]byte(crs[0].Props[lambdaapi.PropPools].(string)), &pools))
	require.Len(t, pools, 7)
	require.Equal(t, []map[string]any{
		{"name": "render", "capacity": 8.0, "maxParked": 100.0, "defaultMaxWait": "10m0s", "runTimeout": "5m0s", "executor": "pull"},
		{"name": "mail", "capacity": 2.0, "maxParked": 50.0, "defaultMaxWait": "1h0m0s", "runTimeout": "5m0s"},
	}, pools[:2])

	// The API: CORS, its preflight route without authorization, the
	// throttles, the custom domain.
	api := ofType(tpl, "AWS::ApiGatewayV2::Api")
	require.Len(t, api, 1)
	require.Equal(t, "UserScheduler", api[0].Props["Name"])
	require.Equal(t, []any{"https://app.example.com"}, api[0].Props["CorsConfiguration"].(map[string]any)["AllowOrigins"])
	unauthorized := 0
	for _, r := range ofType(tpl, "AWS::ApiGatewayV2::Route") {
		if r.Props["AuthorizationType"] != "JWT" {
			unauthorized++
			require.Equal(t, "OPTIONS /{proxy+}", r.Props["RouteKey"])
			require.Equal(t, "NONE", r.Props["AuthorizationType"])
		}
	}
	require.Equal(t, 1, unauthorized)
	stage := ofType(tpl, "AWS::ApiGatewayV2::Stage")
	require.Len(t, stage, 1)
	def := stage[0].Props["DefaultRouteSettings"].(map[string]any)
	require.EqualValues(t, 100, def["ThrottlingRateLimit"])
	require.EqualValues(t, 200, def["ThrottlingBurstLimit"])
	route := stage[0].Props["RouteSettings"].(map[string]any)["POST /v1/pools/{pool}/tasks"].(map[string]any)
	require.Equal(t, true, route["DetailedMetricsEnabled"], "CloudFormation's key names")
	require.EqualValues(t, 20, route["ThrottlingRateLimit"])
	require.EqualValues(t, 40, route["ThrottlingBurstLimit"])
	domain := ofType(tpl, "AWS::ApiGatewayV2::DomainName")
	require.Len(t, domain, 1)
	require.Equal(t, "scheduler.example.com", domain[0].Props["DomainName"])
	mapping := ofType(tpl, "AWS::ApiGatewayV2::ApiMapping")
	require.Len(t, mapping, 1)
	require.Equal(t, map[string]any{"Ref": api[0].ID}, mapping[0].Props["ApiId"])
	require.Equal(t, map[string]any{"Ref": domain[0].ID}, mapping[0].Props["DomainName"])
	require.Equal(t, map[string]any{"Ref": stage[0].ID}, mapping[0].Props["Stage"])

	// The attributes the user's stack exported.
	outputs := tpl["Outputs"].(map[string]any)
	require.Equal(t, "https://scheduler.example.com/", outputs["Url"].(map[string]any)["Value"])
	require.Equal(t, map[string]any{"Ref": tables[0].ID}, outputs["Table"].(map[string]any)["Value"])
	require.Equal(t, 1, len(ofType(tpl, "AWS::SNS::Topic")))
	require.Equal(t, map[string]any{"Ref": ofType(tpl, "AWS::SNS::Topic")[0].ID}, outputs["Alarms"].(map[string]any)["Value"])

	// Grants: the producer may send to the submit queue only; the worker
	// may run transitions and consume the parking queues.
	var submitQ, resultsQ string
	poolQs := map[string]bool{}
	for _, q := range queues {
		if strings.HasPrefix(q.ID, "SchedulerSubmitQueue") {
			submitQ = q.ID
		}
		if strings.HasPrefix(q.ID, "SchedulerResultsQueue") {
			resultsQ = q.ID
		}
		if q.Props["FifoQueue"] == true && q.Props["RedrivePolicy"] != nil {
			poolQs[q.ID] = true
		}
	}
	require.NotEmpty(t, submitQ)
	require.NotEmpty(t, resultsQ)
	policy := func(role string) map[string][]string { // resource JSON -> actions
		out := map[string][]string{}
		for _, p := range ofType(tpl, "AWS::IAM::Policy") {
			if !strings.Contains(js(t, p.Props["Roles"]), role) {
				continue
			}
			for _, s := range p.Props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				st := s.(map[string]any)
				require.Nil(t, st["Condition"])
				res, ok := st["Resource"].([]any)
				if !ok {
					res = []any{st["Resource"]}
				}
				actions, ok := st["Action"].([]any)
				if !ok {
					actions = []any{st["Action"]}
				}
				for _, r := range res {
					for _, a := range actions {
						out[js(t, r)] = append(out[js(t, r)], a.(string))
					}
				}
			}
		}
		return out
	}
	kms := []string{"kms:Decrypt", "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"}
	require.Equal(t, map[string][]string{
		js(t, getAtt(submitQ, "Arn")): {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"},
		js(t, key):                    kms,
	}, policy("Producer"))
	worker := map[string][]string{
		js(t, getAtt(tables[0].ID, "Arn")): {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"},
		js(t, key):                         kms,
	}
	for q := range poolQs {
		worker[js(t, getAtt(q, "Arn"))] = []string{"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueUrl"}
	}
	require.Len(t, poolQs, 7)
	// A worker of an sqs target may send its outcome to the results queue.
	worker[js(t, getAtt(resultsQ, "Arn"))] = []string{"sqs:SendMessage"}
	require.Equal(t, worker, policy("Worker"))

	t.Run("push", func(t *testing.T) { checkPush(t, tpl, fns) })
}

// cfnLint fails t on any cfn-lint error in the template at path.
func cfnLint(t *testing.T, path string) {
	t.Helper()
	lint, err := exec.LookPath("cfn-lint")
	require.NoError(t, err, "cfn-lint is required (pip install cfn-lint)")
	out, err := exec.Command(lint, "--format", "parseable", path).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	// cfn-lint's exit code is a bit set: 2 errors, 4 warnings, 8 informational.
	require.Zero(t, code&2, "cfn-lint errors:\n%s", out)
	require.Zero(t, code&^(2|4|8), "cfn-lint failed:\n%s", out)
	if len(out) > 0 {
		t.Logf("cfn-lint warnings:\n%s", out)
	}
}
