package redispool

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// sessionState records the session state a borrower has created on a
// connection, so that it can be undone (or the connection closed) before
// the next borrower gets it.
type sessionState uint16

const (
	stateMulti        sessionState = 1 << iota // MULTI sent; DISCARD undoes it
	stateWatch                                 // WATCH sent; UNWATCH undoes it
	stateSelect                                // SELECT sent; SELECT of Config.DB undoes it
	stateName                                  // CLIENT SETNAME sent; CLIENT SETNAME of Config.ClientName undoes it
	stateSubscribe                             // SUBSCRIBE or PSUBSCRIBE sent; unsubscribe and drain undoes it
	stateSSubscribe                            // SSUBSCRIBE sent; SUNSUBSCRIBE and drain undoes it
	stateUnresettable                          // state that is not undone cheaply and provably: close the connection
)

// cmdKind classifies a command by the session state it touches.
type cmdKind uint8

const (
	kindPlain        cmdKind = iota
	kindMulti                // MULTI
	kindEndMulti             // EXEC, DISCARD: the reply says whether the transaction ended
	kindWatch                // WATCH
	kindUnwatch              // UNWATCH: the reply says whether the keys are unwatched
	kindSelect               // SELECT
	kindSetName              // CLIENT SETNAME
	kindSubscribe            // SUBSCRIBE, PSUBSCRIBE
	kindSSubscribe           // SSUBSCRIBE
	kindUnresettable         // AUTH, HELLO, MONITOR, CLIENT REPLY, CLIENT TRACKING, RESET, ...
)

// Table-only kinds: commandTable gives them to commands whose kind
// depends on the subcommand, and classify resolves them.
const (
	kindClient cmdKind = iota + kindUnresettable + 1 // CLIENT: classifyClient
	kindScript                                       // SCRIPT: classifyScript
)

// classify returns the kind of cmd, from the command table
// (commands.go). It runs for every command and does not allocate. A
// command not in the table, a module command among them, is plain: no
// state the tracker can undo.
func classify(cmd string, args []any) cmdKind {
	if !mayHaveState(cmd) {
		return kindPlain // GET, SET, HGET, ...: no lookup
	}
	switch k := lookupCommand(cmd).state; k {
	case kindClient:
		return classifyClient(args)
	case kindScript:
		return classifyScript(args)
	default:
		return k
	}
}

// stateShapes has a bit set for each shape — length and first letter —
// of the commands the table gives a state kind. A command of another
// shape, most of them, is plain without a lookup.
var stateShapes = func() (set [8]uint64) {
	for name, info := range commandTable {
		if info.state != kindPlain {
			i := shape(name)
			set[i/64] |= 1 << (i % 64)
		}
	}
	return set
}()

func shape(cmd string) uint {
	return uint(len(cmd)&15)<<5 | uint(cmd[0]&31) // &31 folds case
}

func mayHaveState(cmd string) bool {
	if len(cmd) == 0 || len(cmd) > 15 {
		return false
	}
	i := shape(cmd)
	return stateShapes[i/64]&(1<<(i%64)) != 0
}

// classifyClient classifies CLIENT by its subcommand. Subcommands known
// to leave no state are plain, SETNAME is undone, and anything else
// (REPLY, TRACKING, CACHING, NO-EVICT, NO-TOUCH, SETINFO, subcommands of
// later Redis versions) closes the connection.
func classifyClient(args []any) cmdKind {
	if len(args) == 0 {
		return kindPlain // an error reply, no state
	}
	var sub string
	switch a := args[0].(type) {
	case string:
		sub = a
	case []byte:
		sub = string(a)
	default:
		return kindUnresettable
	}
	if strings.EqualFold(sub, "SETNAME") {
		return kindSetName
	}
	for _, plain := range [...]string{"ID", "INFO", "LIST", "GETNAME", "KILL", "PAUSE", "UNPAUSE", "GETREDIR", "TRACKINGINFO", "HELP", "UNBLOCK"} {
		if strings.EqualFold(sub, plain) {
			return kindPlain
		}
	}
	return kindUnresettable
}

// classifyScript classifies SCRIPT by its subcommand: SCRIPT DEBUG YES
// or SYNC makes the connection's next EVAL start a debugging session
// (SYNC also blocks the server meanwhile) and is not undone cheaply;
// the other subcommands leave no state.
func classifyScript(args []any) cmdKind {
	if len(args) < 2 || !argEqualFold(args[0], "DEBUG") || argEqualFold(args[1], "NO") {
		return kindPlain
	}
	return kindUnresettable
}

// argEqualFold reports whether a command argument is s, ignoring case.
func argEqualFold(arg any, s string) bool {
	switch a := arg.(type) {
	case string:
		return strings.EqualFold(a, s)
	case []byte:
		return strings.EqualFold(string(a), s)
	}
	return false
}

// tracker follows the commands sent on a borrowed connection. Commands
// set state flags when sent, since the server acts on them whether or
// not the reply is read. A flag is cleared early only when a reply
// proves the state is gone (EXEC, DISCARD, UNWATCH answered); otherwise
// reset undoes it when the connection is returned.
//
// redigo allows one goroutine in Receive while another calls Send and
// Flush (redis.PubSubConn is used so: a receiver loop, and Subscribe
// from elsewhere); nothing may run alongside a Do or a Close. So onSend
// and onReceive may run at once, and everything else runs alone. They
// share as little as they can, so that neither takes a lock for a plain
// command: sent is the sender's and recvd the receiver's, state is
// atomic, and the marks, touched only for commands whose reply can
// clear state, are under mu. onSend runs before its command is written
// and onReceive after its reply is read, so a reply is never recorded
// before the command it answers.
type tracker struct {
	state atomic.Uint32 // sessionState flags; changed under mu while onSend and onReceive may run
	sent  uint64        // commands sent since the connection was last in step; the sender's
	recvd uint64        // replies received since then; the receiver's

	mu sync.Mutex // protects marks and head while onSend and onReceive may run
	// marks[head:] lists the pipelined commands whose replies can clear
	// state, in send order. Its array is reused across borrows.
	marks []mark
	head  int
	// pending is len(marks) - head, read by onReceive without mu.
	pending atomic.Int32

	// ps follows a subscription, under mu, so that a connection whose
	// subscriptions have all been confirmed gone needs no drain.
	ps pubsubLog
}

// pubsubLog follows the replies due on a subscribed connection. Each
// (P/S)SUBSCRIBE or (P/S)UNSUBSCRIBE with n arguments is confirmed n
// times, in order, and every other command gets one reply; pushed
// messages come in between. An UNSUBSCRIBE without arguments is
// confirmed once per subscription it ends (once if none), so it is
// known to be done only when a confirmation counts 0 or the next
// command's confirmation comes. Anything else, or a Do while
// subscribed, makes the log lost: the connection is drained as before.
type pubsubLog struct {
	due  []psDue // the commands whose replies are due, oldest first; the array is reused
	head int
	// base is the number of commands sent before the one that
	// subscribed: their replies must all have been read before it.
	base uint64
	zero bool // the last confirmation counted 0 subscriptions
	lost bool
}

// psDue is a command sent on a subscribed connection.
type psDue struct {
	kind psKind
	// left is the number of confirmations still due; -1 for an
	// unsubscribe without arguments not yet confirmed, -2 once it was.
	left int32
}

// psKind names the confirmation a pub/sub command gets.
type psKind uint8

const (
	psOther psKind = iota // one reply: PING's ["pong", ...], or an error
	psSubscribe
	psPSubscribe
	psSSubscribe
	psUnsubscribe
	psPUnsubscribe
	psSUnsubscribe
)

var psNames = [...]string{"", "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe"}

func psKindOf(cmd string) psKind {
	for k := psSubscribe; k <= psSUnsubscribe; k++ {
		if strings.EqualFold(cmd, psNames[k]) {
			return k
		}
	}
	return psOther
}

// start begins the log of a subscription whose first command is the
// sent-th on the connection.
func (l *pubsubLog) start(sent uint64) {
	l.due, l.head = l.due[:0], 0
	l.base, l.zero, l.lost = sent-1, false, false
}

func (l *pubsubLog) sent(cmd string, args []any) {
	if l.lost {
		return
	}
	kind := psKindOf(cmd)
	left := int32(1)
	switch {
	case kind == psOther:
	case len(args) > 0:
		left = int32(len(args))
	case kind >= psUnsubscribe:
		left = -1
	}
	l.due = append(l.due, psDue{kind, left})
}

// received accounts for a reply that is not a pushed message.
func (l *pubsubLog) received(reply any, err error) {
	for !l.lost {
		if l.head == len(l.due) {
			l.lost = true // a reply to nothing we know of
			return
		}
		d := &l.due[l.head]
		name, count, isConf := confirmation(reply)
		switch {
		case err != nil:
			l.pop() // an error answers its whole command
		case !isConf:
			if d.kind != psOther {
				l.lost = true
				return
			}
			l.pop()
		case name != psNames[d.kind]:
			if d.left != -2 {
				l.lost = true
				return
			}
			// The unsubscribe without arguments before it is done.
			l.pop()
			continue
		default:
			l.zero = count == 0
			switch {
			case d.left > 1:
				d.left--
			case d.left == 1, count == 0:
				l.pop()
			default:
				d.left = -2
			}
		}
		return
	}
}

func (l *pubsubLog) pop() {
	if l.head++; l.head == len(l.due) {
		l.due, l.head = l.due[:0], 0
	}
}

// confirmation returns the kind and count of a (un)subscribe
// confirmation: [kind, channel, count].
func confirmation(reply any) (kind string, count int64, ok bool) {
	r, ok := reply.([]any)
	if !ok || len(r) != 3 {
		return "", 0, false
	}
	k, ok1 := r[0].([]byte)
	n, ok2 := r[2].(int64)
	if !ok1 || !ok2 {
		return "", 0, false
	}
	return string(k), n, true
}

// isPushed reports whether reply is a message pushed to a subscriber,
// not a reply to a command.
func isPushed(reply any) bool {
	r, ok := reply.([]any)
	if !ok || len(r) < 3 {
		return false
	}
	k, ok := r[0].([]byte)
	return ok && (string(k) == "message" || string(k) == "pmessage" || string(k) == "smessage")
}

type mark struct {
	seq    uint64 // the command's position in sent
	kind   cmdKind
	clears sessionState // the flags its reply may clear: none a later command set again
}

func (t *tracker) flags() sessionState { return sessionState(t.state.Load()) }

// stateSubscribed is the state of a connection in pub/sub mode.
const stateSubscribed = stateSubscribe | stateSSubscribe

// onSend records a pipelined command.
func (t *tracker) onSend(cmd string, args []any) {
	t.sent++
	kind := classify(cmd, args)
	if kind == kindPlain && t.flags()&stateSubscribed == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.flags()&stateSubscribed != 0:
		t.ps.sent(cmd, args)
	case kind == kindSubscribe || kind == kindSSubscribe:
		t.ps.start(t.sent)
		t.ps.sent(cmd, args)
	}
	t.enter(kind)
	switch kind {
	case kindMulti, kindWatch:
		// A reply to an earlier EXEC, DISCARD or UNWATCH says nothing
		// about the state this command sets.
		again := stateMulti
		if kind == kindWatch {
			again = stateWatch
		}
		for i := t.head; i < len(t.marks); i++ {
			t.marks[i].clears &^= again
		}
	case kindEndMulti, kindUnwatch:
		if t.flags()&(stateSubscribe|stateSSubscribe) == 0 {
			t.marks = append(t.marks, mark{seq: t.sent, kind: kind, clears: stateMulti | stateWatch})
			t.pending.Add(1)
		}
	}
}

// onReceive records a reply read with Receive.
func (t *tracker) onReceive(reply any, err error) {
	if t.flags()&stateSubscribed != 0 {
		// Pushed messages do not pair with commands; replies and
		// confirmations are logged.
		if err == nil && isPushed(reply) {
			return
		}
		t.mu.Lock()
		t.ps.received(reply, err)
		t.mu.Unlock()
		return
	}
	t.recvd++
	if t.pending.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.head < len(t.marks) && t.marks[t.head].seq == t.recvd {
		if err != nil {
			reply = err
		}
		t.settle(t.marks[t.head].kind, reply, t.marks[t.head].clears)
		t.head++
		t.pending.Add(-1)
		if t.head == len(t.marks) {
			t.marks, t.head = t.marks[:0], 0
		}
	}
}

// beforeDo records the command of a Do and returns its kind.
func (t *tracker) beforeDo(cmd string, args []any) cmdKind {
	if cmd == "" {
		return kindPlain
	}
	kind := classify(cmd, args)
	if kind == kindSubscribe || kind == kindSSubscribe || t.flags()&stateSubscribed != 0 {
		// Do reads one reply where a subscription gets several: the
		// log cannot follow.
		t.mu.Lock()
		t.ps.lost = true
		t.mu.Unlock()
	}
	t.enter(kind)
	return kind
}

// afterDo records the replies of a Do: redigo has read every pending
// reply and the command's own. For Do("") reply holds them all; for
// Do(cmd) it holds the last, the command's own.
func (t *tracker) afterDo(cmd string, kind cmdKind, reply any) {
	subscribed := t.flags()&(stateSubscribe|stateSSubscribe) != 0
	if cmd == "" && !subscribed {
		if replies, ok := reply.([]any); ok {
			for _, m := range t.marks[t.head:] {
				if i := m.seq - t.recvd - 1; i < uint64(len(replies)) {
					t.settle(m.kind, replies[i], m.clears)
				}
			}
		}
	} else if !subscribed && (kind == kindEndMulti || kind == kindUnwatch) {
		t.settle(kind, reply, stateMulti|stateWatch)
	}
	t.sent, t.recvd = 0, 0
	t.dropMarks()
}

// enter sets the state flag of a command about to be sent.
func (t *tracker) enter(kind cmdKind) {
	var f sessionState
	switch kind {
	case kindPlain:
		return
	case kindMulti:
		f = stateMulti
	case kindWatch:
		f = stateWatch
	case kindSelect:
		f = stateSelect
	case kindSetName:
		f = stateName
	case kindSubscribe:
		f = stateSubscribe
	case kindSSubscribe:
		f = stateSSubscribe
	case kindUnresettable:
		f = stateUnresettable
	}
	t.state.Or(uint32(f))
}

// settle clears state that a reply proves gone, among the flags in
// mask: those no later command has set again.
func (t *tracker) settle(kind cmdKind, reply any, mask sessionState) {
	rerr, isErr := reply.(redis.Error)
	var gone sessionState
	switch kind {
	case kindEndMulti:
		switch {
		case !isErr, strings.HasPrefix(string(rerr), "EXECABORT"):
			// The transaction ran or was discarded; either unwatches.
			gone = stateMulti | stateWatch
		case strings.Contains(string(rerr), "without MULTI"):
			gone = stateMulti // not in a transaction; WATCH, if any, stands
		}
	case kindUnwatch:
		if !isErr {
			gone = stateWatch
		}
	}
	if gone&mask != 0 {
		t.state.And(^uint32(gone & mask))
	}
}

// clean reports whether the connection needs no reset.
func (t *tracker) clean() bool { return t.flags() == 0 && t.sent == t.recvd }

func (t *tracker) clear() {
	t.state.Store(0)
	t.sent, t.recvd = 0, 0
	t.dropMarks()
	t.ps.start(1)
}

// unsubscribed reports whether the connection, though it subscribed,
// is known to have left pub/sub mode with nothing in flight: every
// reply before the subscription was read before it, every command
// since has had all its replies, and the last confirmation counted 0.
// Classic and sharded subscriptions are counted apart, so only a
// connection that used one kind qualifies.
func (t *tracker) unsubscribed() bool {
	f := t.flags() & stateSubscribed
	return f != stateSubscribed && !t.ps.lost && t.ps.head == len(t.ps.due) && t.ps.zero && t.recvd == t.ps.base
}

func (t *tracker) dropMarks() {
	t.marks, t.head = t.marks[:0], 0
	if t.pending.Load() != 0 {
		t.pending.Store(0)
	}
}

var errUnresettable = errors.New("redispool: connection has session state that cannot be reset")

// drainMarker is echoed at the end of a pub/sub drain; the first reply
// equal to it is the last one the drain has to read.
var drainMarker = fmt.Sprintf("redispool-drain-%d", time.Now().UnixNano())

// reset undoes the session state of c in one round trip (two after
// pub/sub), under CheckTimeout. It returns an error when the connection
// must be closed instead.
func (c *conn) reset() error {
	t := &c.t
	if t.clean() {
		return nil
	}
	if t.flags()&stateUnresettable != 0 {
		return errUnresettable
	}
	deadline := time.Now().Add(c.f.cfg.CheckTimeout)
	remaining := func() (time.Duration, error) {
		d := time.Until(deadline)
		if d <= 0 {
			return 0, errors.New("redispool: reset timed out")
		}
		return d, nil
	}

	if t.flags()&stateSubscribed != 0 && t.unsubscribed() {
		// The borrower unsubscribed and read every confirmation: a
		// second drain would only cost a round trip.
		t.state.And(^uint32(stateSubscribed))
		t.sent, t.recvd = 0, 0
	}
	if t.flags()&stateSubscribed != 0 {
		// Leave pub/sub, then read everything up to the echoed marker:
		// pending replies, pushed messages, unsubscribe confirmations.
		c.rc.Send("UNSUBSCRIBE")
		c.rc.Send("PUNSUBSCRIBE")
		if t.flags()&stateSSubscribe != 0 {
			c.rc.Send("SUNSUBSCRIBE")
		}
		c.rc.Send("ECHO", drainMarker)
		if err := c.rc.Flush(); err != nil {
			return err
		}
		for {
			d, err := remaining()
			if err != nil {
				return err
			}
			reply, err := c.rc.ReceiveWithTimeout(d)
			if err != nil {
				if _, ok := err.(redis.Error); ok {
					continue
				}
				return err
			}
			if s, ok := reply.([]byte); ok && string(s) == drainMarker {
				break
			}
		}
		t.state.And(^uint32(stateSubscribe | stateSSubscribe))
		t.sent, t.recvd = 0, 0
	}

	var pending uint64 // unread replies
	if t.sent > t.recvd {
		pending = t.sent - t.recvd
	}
	n := uint64(0)
	discard := t.flags()&stateMulti != 0 // sent first, so its reply is pending+0
	if discard {
		c.rc.Send("DISCARD")
		n++
	}
	if t.flags()&stateWatch != 0 {
		c.rc.Send("UNWATCH")
		n++
	}
	if t.flags()&stateSelect != 0 {
		c.rc.Send("SELECT", c.f.cfg.DB)
		n++
	}
	if t.flags()&stateName != 0 {
		c.rc.Send("CLIENT", "SETNAME", c.f.cfg.ClientName)
		n++
	}
	if err := c.rc.Flush(); err != nil {
		return err
	}
	for i := uint64(0); i < pending+n; i++ {
		d, err := remaining()
		if err != nil {
			return err
		}
		_, err = c.rc.ReceiveWithTimeout(d)
		if i < pending {
			// The borrower's unread replies: error replies are fine.
			if _, ok := err.(redis.Error); ok {
				err = nil
			}
		} else if rerr, ok := err.(redis.Error); ok && discard && i == pending && strings.Contains(string(rerr), "without MULTI") {
			err = nil // MULTI had failed: no transaction to discard
		}
		if err != nil {
			return fmt.Errorf("redispool: reset: %w", err)
		}
	}
	t.clear()
	return nil
}
