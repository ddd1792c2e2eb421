package redispool

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// The engine returns *NoSuchElementErr both when it is exhausted and when
// the connection it dialed for a borrow failed its first check;
// borrowFromEngine tells them apart by what the factory recorded, not by
// the error's text.
func TestEngineBorrowTellsFailedFirstCheckFromExhaustion(t *testing.T) {
	t.Run("FailedFirstCheck", func(t *testing.T) {
		// Every connection is past a 1ns MaxConnLifetime by its check.
		p, _ := miniPool(t, Config{MaxTotal: 2, MaxConnLifetime: time.Nanosecond, PipelineConns: -1})
		_, err := p.GetContext(context.Background())
		if err == nil || errors.Is(err, ErrPoolExhausted) ||
			!strings.Contains(err.Error(), "new connection failed its health check: connection past its lifetime limit") {
			t.Fatalf("borrow: %v; want the first check's failure, not ErrPoolExhausted", err)
		}
	})
	t.Run("Exhausted", func(t *testing.T) {
		p, _ := miniPool(t, Config{MaxTotal: 1, PipelineConns: -1})
		// Take the engine's only connection behind the front's back, so
		// that the engine reports exhaustion to a borrower.
		obj, err := p.op.BorrowObject(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err = p.borrowFromEngine(ctx)
		if !errors.Is(err, ErrPoolExhausted) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("borrowFromEngine with the engine exhausted: %v; want ErrPoolExhausted and the context's error", err)
		}
		if err := p.op.ReturnObject(context.Background(), obj); err != nil {
			t.Fatal(err)
		}
	})
}
