package lambdaemu_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaemu"
)

// bootstrapEnv, set, makes the test binary the echo function's bootstrap.
const bootstrapEnv = "LAMBDAEMU_TEST_BOOTSTRAP"

func TestMain(m *testing.M) {
	if os.Getenv(bootstrapEnv) != "" {
		lambda.Start(echo)
		return
	}
	os.Exit(m.Run())
}

// echo returns its event, or fails with the event's "fail".
func echo(_ context.Context, ev map[string]any) (map[string]any, error) {
	if msg, ok := ev["fail"].(string); ok {
		return nil, errors.New(msg)
	}
	return ev, nil
}

// TestInvoke checks the emulator's Invoke answers through the SDK's Lambda
// client, which reads them as it reads Lambda's.
func TestInvoke(t *testing.T) {
	emu := lambdaemu.Start(t, lambdaemu.Options{Functions: []lambdaemu.Function{{
		Name: "echo", Retries: 1,
		Bootstrap: func() *exec.Cmd {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), bootstrapEnv+"=1")
			return cmd
		},
	}}})
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(hc.CloseIdleConnections)
	c := awslambda.New(awslambda.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(emu.URL), HTTPClient: hc, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard, not a speed bound
	defer cancel()
	invoke := func(name, kind, payload string) (*awslambda.InvokeOutput, error) {
		return c.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String(name), InvocationType: types.InvocationType(kind), Payload: []byte(payload)})
	}

	out, err := invoke("echo", "RequestResponse", `{"x":1}`)
	require.NoError(t, err)
	require.EqualValues(t, 200, out.StatusCode)
	require.JSONEq(t, `{"x":1}`, string(out.Payload))
	require.Nil(t, out.FunctionError)
	require.Equal(t, "$LATEST", aws.ToString(out.ExecutedVersion))

	out, err = invoke("arn:aws:lambda:us-east-1:000000000000:function:echo", "RequestResponse", `{"fail":"no"}`)
	require.NoError(t, err)
	require.Equal(t, "Unhandled", aws.ToString(out.FunctionError))
	require.JSONEq(t, `{"errorMessage":"no","errorType":"errorString"}`, string(out.Payload))

	out, err = invoke("echo", "DryRun", `{}`)
	require.NoError(t, err)
	require.EqualValues(t, 204, out.StatusCode)

	out, err = invoke("echo", "Event", `{"fail":"twice"}`)
	require.NoError(t, err)
	require.EqualValues(t, 202, out.StatusCode)
	for len(emu.Runs("echo")) < 4 {
		require.NoError(t, ctx.Err(), "waiting for the event's run and its retry")
		time.Sleep(10 * time.Millisecond)
	}

	var notFound *types.ResourceNotFoundException
	_, err = invoke("nope", "Event", `{}`)
	require.ErrorAs(t, err, &notFound)
	require.Contains(t, notFound.ErrorMessage(), "function:nope")
	_, err = invoke("echo:v7", "Event", `{}`)
	require.ErrorAs(t, err, &notFound, "versions are not emulated")

	var badContent *types.InvalidRequestContentException
	_, err = invoke("echo", "Event", `{not json`)
	require.ErrorAs(t, err, &badContent)

	var tooLarge *types.RequestTooLargeException
	_, err = invoke("echo", "Event", `"`+strings.Repeat("x", lambdaemu.MaxAsyncPayload)+`"`)
	require.ErrorAs(t, err, &tooLarge)

	emu.Throttle("echo", 1)
	var throttled *types.TooManyRequestsException
	_, err = invoke("echo", "Event", `{}`)
	require.ErrorAs(t, err, &throttled)
	require.Equal(t, types.ThrottleReasonReservedFunctionConcurrentInvocationLimitExceeded, throttled.Reason)

	st := emu.Stats("echo")
	require.Equal(t, 7, st.InvokeCalls, "the unknown function's and version's calls are not the function's")
	require.Equal(t, 1, st.Throttled)
	require.Equal(t, 1, st.Queued)
	require.Equal(t, 4, st.Runs, "two synchronous runs, and the event's run and its one retry")
	require.Equal(t, 3, st.Errors)
	require.Equal(t, 1, st.MaxConcurrent)
	runs := emu.Runs("echo")
	require.Equal(t, []int{1, 2}, []int{runs[2].Attempt, runs[3].Attempt})
	require.Equal(t, runs[2].RequestID, runs[3].RequestID, "a retry keeps the event's request id")
}
