package redispool

// clusterReplyError makes err, an error a node replied with, the error
// a caller sees: a CROSSSLOT reply also becomes ErrCrossSlot. Other
// errors are returned as they are. The cluster's command paths do the
// same inline, in their switch on classifyReply.
func clusterReplyError(err error) error {
	if kind, rerr := classifyReply(err); kind == replyCrossSlot {
		return crossSlotError{rerr}
	}
	return err
}
