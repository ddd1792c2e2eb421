package redispool

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/gomodule/redigo/redis"
)

var (
	// ErrCrossSlot is wrapped by the error for a command whose keys
	// hash to different slots: the server's CROSSSLOT reply, and the
	// error a connection bound to one slot returns, before any I/O, for
	// a command whose key is served by another node.
	ErrCrossSlot = errors.New("redispool: cluster: keys in different slots")

	// ErrTooManyRedirects is wrapped by the error for a command that was
	// redirected (MOVED or ASK) more than ClusterConfig.MaxRedirects
	// times. The error also wraps the last *RedirectError.
	ErrTooManyRedirects = errors.New("redispool: cluster: too many redirects")
)

// RedirectError is a MOVED or ASK reply that was not followed: because
// MaxRedirects is negative, or because it came to a connection in the
// middle of a transaction, a subscription or a pipeline, which cannot
// move to another node. The slot map has been updated for a MOVED.
type RedirectError struct {
	Ask  bool   // ASK: the slot is being migrated; false: MOVED
	Slot int    // the hash slot of the command's key
	Addr string // host:port of the node that serves the slot
}

func (e *RedirectError) Error() string {
	kind := "MOVED"
	if e.Ask {
		kind = "ASK"
	}
	return fmt.Sprintf("redispool: cluster: %s: slot %d is served by %s", kind, e.Slot, e.Addr)
}

// crossSlotError is a CROSSSLOT reply. It is the server's redis.Error,
// text and all, and also ErrCrossSlot, so that both
// errors.As(err, &redis.Error{}) and errors.Is(err, ErrCrossSlot) hold.
type crossSlotError struct{ reply redis.Error }

func (e crossSlotError) Error() string   { return string(e.reply) }
func (e crossSlotError) Unwrap() []error { return []error{e.reply, ErrCrossSlot} }

// replyKind classifies the cluster-related error replies.
type replyKind uint8

const (
	replyOther       replyKind = iota // not a cluster error (or no error)
	replyMoved                        // MOVED slot host:port
	replyAsk                          // ASK slot host:port
	replyTryAgain                     // TRYAGAIN: a multi-key command met a slot in migration
	replyClusterDown                  // CLUSTERDOWN: no quorum, or the slot is not served
	replyLoading                      // LOADING: the node is loading its dataset
	replyReadOnly                     // READONLY: a write reached a replica (a demoted master)
	replyCrossSlot                    // CROSSSLOT: keys in different slots
)

// classifyReply tells the cluster's error replies apart by their first
// word. It does not allocate.
func classifyReply(err error) (replyKind, redis.Error) {
	rerr, ok := err.(redis.Error)
	if !ok {
		return replyOther, ""
	}
	s := string(rerr)
	switch {
	case strings.HasPrefix(s, "MOVED "):
		return replyMoved, rerr
	case strings.HasPrefix(s, "ASK "):
		return replyAsk, rerr
	case strings.HasPrefix(s, "TRYAGAIN"):
		return replyTryAgain, rerr
	case strings.HasPrefix(s, "CLUSTERDOWN"):
		return replyClusterDown, rerr
	case strings.HasPrefix(s, "LOADING"):
		return replyLoading, rerr
	case strings.HasPrefix(s, "READONLY"):
		return replyReadOnly, rerr
	case strings.HasPrefix(s, "CROSSSLOT"):
		return replyCrossSlot, rerr
	}
	return replyOther, rerr
}

// parseRedirect parses "MOVED 3999 127.0.0.1:6381" or "ASK 3999 ...".
// An empty host (":6381", sent when the node does not know its own
// endpoint) means the host of the node that replied, from.
func parseRedirect(reply redis.Error, from string) (*RedirectError, error) {
	f := strings.Fields(string(reply))
	if len(f) != 3 {
		return nil, fmt.Errorf("redispool: cluster: malformed redirect %q from %s", reply, from)
	}
	slot, err := strconv.Atoi(f[1])
	if err != nil || slot < 0 || slot >= slotCount {
		return nil, fmt.Errorf("redispool: cluster: malformed redirect %q from %s", reply, from)
	}
	host, port, err := net.SplitHostPort(f[2])
	if err != nil {
		return nil, fmt.Errorf("redispool: cluster: malformed redirect %q from %s", reply, from)
	}
	if host == "" {
		host, _, _ = net.SplitHostPort(from)
	}
	return &RedirectError{Ask: f[0] == "ASK", Slot: slot, Addr: net.JoinHostPort(host, port)}, nil
}
