package push

import (
	"errors"
	"net/http"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/require"
)

func TestAWSFailureClassified(t *testing.T) {
	answer := func(status int, code string) error {
		return &smithy.OperationError{ServiceID: "Lambda", OperationName: "Invoke", Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      &smithy.GenericAPIError{Code: code, Message: "m"},
			},
		}}
	}
	for _, c := range []struct {
		status    int
		code      string
		permanent bool
	}{
		{404, "ResourceNotFoundException", true},
		{403, "AccessDeniedException", true},
		{400, "InvalidParameterValueException", true},
		{429, "TooManyRequestsException", false},
		{409, "ResourceConflictException", false},
		{400, "KMSThrottlingException", false},
		{403, "RequestThrottled", false},
		{500, "ServiceException", false},
		{502, "EC2ThrottledException", false},
		{503, "Whatever", false},
	} {
		res := awsFailure("invoke f", answer(c.status, c.code))
		require.Equal(t, c.permanent, res.permanent, "%d %s", c.status, c.code)
		require.ErrorContains(t, res.err, c.code)
	}
	res := awsFailure("invoke f", errors.New("dial tcp: connection refused"))
	require.False(t, res.permanent, "no answer at all may pass")
}

func TestHTTPAnswersClassified(t *testing.T) {
	for code, retry := range map[int]bool{408: true, 409: true, 425: true, 429: true, 500: true, 503: true, 400: false, 401: false, 404: false, 422: false, 302: false} {
		require.Equal(t, retry, retryableStatus(code), "%d", code)
	}
	require.Equal(t, "https://hooks.example.com/jobs", redact("https://user:pw@hooks.example.com/jobs?token=s3cret"))
}
