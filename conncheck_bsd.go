//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package redispool

import "syscall"

// recvPeek copies the start of the socket's receive queue into buf
// without consuming it or blocking.
func recvPeek(fd uintptr, buf []byte) (int, error) {
	n, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n, err
}

// peerSentFIN is not known here without a read: a FIN queued behind
// unread bytes is found by the connection's next command instead.
func peerSentFIN(uintptr) bool { return false }
