package redispool

import (
	"syscall"
	"unsafe"
)

// peerSentFIN reports whether the TCP connection on fd has received the
// peer's FIN (state CLOSE_WAIT), from the first byte of struct tcp_info,
// tcpi_state. Unix sockets and errors report false.
func peerSentFIN(fd uintptr) bool {
	var info [8]byte
	size := uint32(len(info))
	_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	const tcpCloseWait = 8 // TCP_CLOSE_WAIT in include/net/tcp_states.h
	return errno == 0 && size > 0 && info[0] == tcpCloseWait
}

// recvPeek copies the start of the socket's receive queue into buf
// without consuming it or blocking. It calls recvfrom directly, without
// a source address, because syscall.Recvfrom allocates for one.
func recvPeek(fd uintptr, buf []byte) (int, error) {
	n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
