package redispoolotel

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// CommandHook returns a redispool.CommandHook that makes a client span
// of each command, with the TracerProvider of WithTracerProvider (see
// the package documentation). Set it as Config.CommandHook, or as
// ClusterConfig.Node.CommandHook for a Cluster.
func CommandHook(opts ...Option) redispool.CommandHook {
	cfg := newConfig(opts)
	tracer := cfg.tracerProvider.Tracer(scope)
	base := append([]attribute.KeyValue{
		attribute.String("db.system", "redis"),
		attribute.String("db.system.name", "redis"),
	}, cfg.attrs...)
	return func(ctx context.Context, cmd redispool.CommandInfo) func(error) {
		name := strings.ToUpper(cmd.Name)
		attrs := make([]attribute.KeyValue, 0, len(base)+5)
		attrs = append(attrs, base...)
		attrs = append(attrs,
			attribute.String("db.operation.name", name),
			attribute.String("db.namespace", strconv.Itoa(cmd.DB)),
			attribute.String("network.transport", cmd.Network))
		if host, port, err := net.SplitHostPort(cmd.Addr); err == nil && cmd.Network != "unix" {
			attrs = append(attrs, attribute.String("server.address", host))
			if p, err := strconv.Atoi(port); err == nil {
				attrs = append(attrs, attribute.Int("server.port", p))
			}
		} else {
			attrs = append(attrs, attribute.String("server.address", cmd.Addr))
		}
		_, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
		return func(err error) {
			if err != nil {
				var re redis.Error
				if errors.As(err, &re) {
					// "ERR unknown command 'x', with args beginning
					// with: ..." quotes arguments: keep the prefix.
					prefix, _, _ := strings.Cut(string(re), " ")
					span.SetAttributes(attribute.String("db.response.status_code", prefix))
					span.SetStatus(codes.Error, prefix)
				} else {
					span.RecordError(err)
					span.SetStatus(codes.Error, err.Error())
				}
			}
			span.End()
		}
	}
}
