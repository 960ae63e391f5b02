package parkinglot

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
)

// SaturationRatio is the share of a pool's maxParked at which its
// saturation alarm fires: past maxParked, submissions are rejected.
const SaturationRatio = 0.8

// monitoring adds the alarms, their SNS topic and the dashboard:
//
//	alarm                 metric                                            fires when
//	DLQ-<queue>           DLQ ApproximateNumberOfMessagesVisible (max, 1m)  >= 1
//	Errors-<function>     Lambda Errors (sum, 5m)                           >= 1
//	Throttles-<function>  Lambda Throttles (sum, 5m)                        >= 1
//	Saturation-<pool>     PoolSaturation, expire's EMF gauge (max, 1m)      >= 100% (running = capacity), 5 of 5 minutes
//	Rejected-<pool>       Outcomes{Pool, Outcome=rejected}, EMF (sum, 5m)   >= 1
//	ParkedDepth-<pool>    parking queue visible + in flight (max, 1m)       >= SaturationRatio * maxParked, 3 of 3 minutes
//	Api5xx                HTTP API 5xx (sum, 5m)                            >= 5
//	TableThrottles        table ReadThrottleEvents + WriteThrottleEvents    >= 1
//	                      (sum, 5m)
//	ExpireStopped         expire's Invocations (sum, 5m), missing data      < 1
//	                      breaching
//
// The EMF metrics are the functions' (lambdaapi, namespace
// lambdaapi.DefaultNamespace). A pool's parking queue holds one message per
// parked task (awsstore), so its depth is the pool's parked count as SQS
// sees it.
func (s *Parkinglot) monitoring() {
	s.AlarmTopic = awssns.NewTopic(s.Construct, jsii.String("Alarms"), &awssns.TopicProps{
		DisplayName: jsii.String(s.props.Name + " alarms"),
		MasterKey:   awskms.Alias_FromAliasName(s.Construct, jsii.String("SnsKey"), jsii.String("alias/aws/sns")),
		EnforceSSL:  jsii.Bool(true),
	})
	if s.props.AlarmEmail != "" {
		s.AlarmTopic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(s.props.AlarmEmail), nil))
	}
	action := awscloudwatchactions.NewSnsAction(s.AlarmTopic)
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	five := awscdk.Duration_Minutes(jsii.Number(5))
	scope := map[string]constructs.Construct{} // by alarm id: a pool's alarms are in its stack
	add := func(id string, props *awscloudwatch.AlarmProps) {
		sc, ok := scope[id]
		if !ok {
			sc = s.Construct
		}
		a := awscloudwatch.NewAlarm(sc, jsii.String("Alarm-"+id), props)
		a.AddAlarmAction(action)
		a.AddOkAction(action)
		s.Alarms[id] = a
	}
	alarm := func(id, desc string, m awscloudwatch.IMetric, threshold, periods float64) {
		add(id, &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String(desc),
			Metric:             m,
			Threshold:          jsii.Number(threshold),
			EvaluationPeriods:  jsii.Number(periods),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
	}
	maxOver := func(p awscdk.Duration) *awscloudwatch.MetricOptions {
		return &awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: p}
	}
	sumOver := func(p awscdk.Duration) *awscloudwatch.MetricOptions {
		return &awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: p}
	}

	dlqs := map[string]awssqs.Queue{"submit": s.SubmitDLQ}
	if s.ResultsDLQ != nil {
		dlqs["results"] = s.ResultsDLQ
	}
	for _, p := range s.props.Pools {
		dlqs["pool-"+p.Name] = s.PoolDLQs[p.Name]
		for _, id := range []string{"DLQ-pool-", "Saturation-", "Rejected-", "ParkedDepth-"} {
			scope[id+p.Name] = s.poolScope[p.Name]
		}
	}
	for _, id := range sortedKeys(dlqs) {
		alarm("DLQ-"+id, "messages in the "+id+" dead-letter queue: redrive them once the cause is fixed",
			dlqs[id].MetricApproximateNumberOfMessagesVisible(maxOver(minute)), 1, 1)
	}
	for _, f := range Functions {
		fn := s.Functions[f]
		alarm("Errors-"+string(f), "function "+string(f)+" failed invocations", fn.MetricErrors(sumOver(five)), 1, 1)
		alarm("Throttles-"+string(f), "function "+string(f)+" was throttled", fn.MetricThrottles(sumOver(five)), 1, 1)
	}
	depth := map[string]awscloudwatch.IMetric{}
	for i, p := range s.props.Pools {
		// Metric ids are unique per pool: the dashboard graphs them together.
		q, v, f := s.PoolQueues[p.Name], fmt.Sprintf("visible%d", i), fmt.Sprintf("inflight%d", i)
		d := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String(v + " + " + f),
			UsingMetrics: &map[string]awscloudwatch.IMetric{
				v: q.MetricApproximateNumberOfMessagesVisible(maxOver(minute)),
				f: q.MetricApproximateNumberOfMessagesNotVisible(maxOver(minute)),
			},
			Label:  jsii.String(p.Name + " parked"),
			Period: minute,
		})
		depth[p.Name] = d
		alarm("Saturation-"+p.Name, "pool "+p.Name+": every slot taken for 5 minutes; new tasks park",
			poolMetric("PoolSaturation", p.Name, "Maximum", minute), 100, 5)
		alarm("Rejected-"+p.Name, "pool "+p.Name+": submissions rejected (parked depth full)",
			awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
				Namespace: jsii.String(lambdaapi.DefaultNamespace), MetricName: jsii.String("Outcomes"),
				DimensionsMap: &map[string]*string{"Pool": jsii.String(p.Name), "Outcome": jsii.String("rejected")},
				Statistic:     jsii.String("Sum"), Period: five,
			}), 1, 1)
		if p.MaxParked == 0 {
			continue // parks nothing: every submission beyond capacity is rejected by design
		}
		alarm("ParkedDepth-"+p.Name, fmt.Sprintf("pool %s: parked depth at %.0f%% of maxParked %d; submissions are rejected past it",
			p.Name, SaturationRatio*100, p.MaxParked), d, math.Ceil(SaturationRatio*float64(p.MaxParked)), 3)
	}
	alarm("Api5xx", "HTTP API answered 5xx", s.API.MetricServerError(sumOver(five)), 5, 1)
	alarm("TableThrottles", "DynamoDB throttled requests on the table (read or write throttle events); "+
		"the SDK retries them, but a steady rate slows every transition",
		awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String("reads + writes"),
			UsingMetrics: &map[string]awscloudwatch.IMetric{
				"reads":  s.Table.Metric(jsii.String("ReadThrottleEvents"), sumOver(five)),
				"writes": s.Table.Metric(jsii.String("WriteThrottleEvents"), sumOver(five)),
			},
			Label:  jsii.String("table throttle events"),
			Period: five,
		}), 1, 1)
	// Expire runs every minute: five minutes without an invocation (no
	// data at all counts) mean the schedule or the function is gone, and
	// with it expiry, lease reclaim and the outbox re-sends.
	add("ExpireStopped", &awscloudwatch.AlarmProps{
		AlarmDescription:   jsii.String("function expire did not run for 5 minutes: deadlines, leases and unsent parked tasks are not acted on"),
		Metric:             s.Functions[Expire].MetricInvocations(sumOver(five)),
		Threshold:          jsii.Number(1),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_BREACHING,
	})

	s.dashboard(depth)
}

func (s *Parkinglot) dashboard(depth map[string]awscloudwatch.IMetric) {
	graph := func(title string, left ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Left: &left, Width: jsii.Number(12), Height: jsii.Number(6),
		})
	}
	var inv, errs, dur, thr []awscloudwatch.IMetric
	for _, f := range Functions {
		fn := s.Functions[f]
		inv = append(inv, fn.MetricInvocations(nil))
		errs = append(errs, fn.MetricErrors(nil))
		dur = append(dur, fn.MetricDuration(&awscloudwatch.MetricOptions{Statistic: jsii.String("p99")}))
		thr = append(thr, fn.MetricThrottles(nil))
	}
	var parked, dlq, sat, wake []awscloudwatch.IMetric
	for _, p := range s.props.Pools {
		parked = append(parked, depth[p.Name])
		sat = append(sat, poolMetric("PoolSaturation", p.Name, "Maximum", nil))
		wake = append(wake, poolMetric("WakeLatency", p.Name, "p99", nil))
		dlq = append(dlq, s.PoolDLQs[p.Name].MetricApproximateNumberOfMessagesVisible(nil))
	}
	dlq = append(dlq, s.SubmitDLQ.MetricApproximateNumberOfMessagesVisible(nil))
	queues := []awscloudwatch.IMetric{s.SubmitQueue.MetricApproximateNumberOfMessagesVisible(nil),
		s.SubmitQueue.MetricApproximateAgeOfOldestMessage(nil)}
	if s.ResultsQueue != nil {
		dlq = append(dlq, s.ResultsDLQ.MetricApproximateNumberOfMessagesVisible(nil))
		queues = append(queues, s.ResultsQueue.MetricApproximateNumberOfMessagesVisible(nil),
			s.ResultsQueue.MetricApproximateAgeOfOldestMessage(nil))
	}
	awscloudwatch.NewDashboard(s.Construct, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName: jsii.String(s.props.Name),
		Widgets: &[]*[]awscloudwatch.IWidget{
			{graph("API requests", s.API.MetricCount(nil)), graph("API errors", s.API.MetricClientError(nil), s.API.MetricServerError(nil))},
			{graph("API latency p99", s.API.MetricLatency(&awscloudwatch.MetricOptions{Statistic: jsii.String("p99")}),
				s.API.MetricIntegrationLatency(&awscloudwatch.MetricOptions{Statistic: jsii.String("p99")})),
				graph("Invocations", inv...)},
			{graph("Function errors", errs...), graph("Function duration p99", dur...)},
			{graph("Throttles", thr...), graph("Parked per pool (queue depth)", parked...)},
			{graph("Pool saturation % (running / capacity)", sat...), graph("Wake latency p99 (ms)", wake...)},
			{graph("Dead-letter queues", dlq...), graph("Submit and results queues", queues...)},
			{graph("DynamoDB throttled requests", s.Table.MetricThrottledRequestsForOperations(nil)),
				graph("DynamoDB consumed write units", s.Table.MetricConsumedWriteCapacityUnits(nil))},
		},
	})
}

// poolMetric is one of the functions' EMF metrics of pool.
func poolMetric(name, pool, stat string, period awscdk.Duration) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace: jsii.String(lambdaapi.DefaultNamespace), MetricName: jsii.String(name),
		DimensionsMap: &map[string]*string{"Pool": jsii.String(pool)},
		Statistic:     jsii.String(stat), Period: period,
	})
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
