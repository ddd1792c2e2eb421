//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package redispool

// peerSentFIN is not known here without a read: a FIN queued behind
// unread bytes is found by the connection's next command instead.
func peerSentFIN(uintptr) bool { return false }
