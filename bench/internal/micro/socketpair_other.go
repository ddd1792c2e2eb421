//go:build !unix

package micro

import (
	"context"
	"errors"
	"net"
)

func dialSocketpair(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("micro: socketpair needs a unix system")
}
