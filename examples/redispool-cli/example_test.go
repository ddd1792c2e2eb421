package main

import (
	"context"
	"log"
	"log/slog"
	"os"

	"github.com/alicebob/miniredis/v2"
	"github.com/redispool/redispool"
)

// Attach a slog.Logger to a pool to see its connections come and go, as
// redispool-cli --log-level debug does. Routine events are logged at
// Debug; connections closed as broken or unhealthy, and health-check
// and reset failures, at Info; dial failures at Warn. Here the time and
// the addresses, which change from run to run, are left out.
func Example_logger() {
	srv, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "addr", "local":
				return slog.Attr{}
			}
			return a
		},
	}))

	ctx := context.Background()
	p, err := redispool.New(ctx, redispool.Config{
		Addr:    srv.Addr(),
		MaxIdle: 1,
		Logger:  logger,
	})
	if err != nil {
		log.Fatal(err)
	}

	// Two connections at once; only one may stay idle afterwards.
	c1, _ := p.GetContext(ctx)
	c2, _ := p.GetContext(ctx)
	c1.Close()
	c2.Close()
	p.Close()
	// Output:
	// level=DEBUG msg="redispool: connection created"
	// level=DEBUG msg="redispool: connection created"
	// level=DEBUG msg="redispool: connection closed" reason=surplus
	// level=DEBUG msg="redispool: connection closed" reason=closed
}
