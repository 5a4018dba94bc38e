# Sourced by peers.sh, soak.sh and profile.sh: the flowgen stream they send,
# read from the environment with the same defaults in all three, so that
# their figures describe the same traffic. Each script's header documents
# the variables.
VERSION=${VERSION:-9}
EXPORTERS=${EXPORTERS:-4}
HOSTS=${HOSTS:-100000}
SEED=${SEED:-1}
CONVERSATIONS=${CONVERSATIONS:-0}
REPLY_DELAY=${REPLY_DELAY:-0}
# stream_args are flowgen's flags for that stream (target, rate and
# duration are each script's own).
stream_args=(--version "$VERSION" --exporters "$EXPORTERS" --hosts "$HOSTS" --seed "$SEED"
	--conversations "$CONVERSATIONS" --reply-delay "$REPLY_DELAY")
