module github.com/redispool/redispool

go 1.23

require (
	github.com/gomodule/redigo v1.9.3
	github.com/jolestar/go-commons-pool/v2 v2.1.2
)
