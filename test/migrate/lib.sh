# test/migrate/lib.sh: two "hosts" on one machine for migration tests (sourced).
#
# hosts_up creates two network namespaces joined by a veth pair (plus loopback in each):
#   $SRC_NS  10.231.$net.1/30  (the workload and migrate)
#   $DST_NS  10.231.$net.2/30  (the page server)
# 10.231.0.0/16 is private and the namespaces have no other interface or route, so
# nothing leaves the machine. Names carry our PID so parallel runs do not collide.
# run_src / run_dst CMD... run a command in one of them; only the network namespace is
# entered (nsenter --net), so both share ferry's mount and pid namespaces (`ip netns
# exec` would give every command its own mount namespace). hosts_down removes both
# (the veth pair goes with them); call it from an EXIT trap.

SRC_NS=ferry-src-$$
DST_NS=ferry-dst-$$
net=$(($$ % 250 + 1))
SRC_IP=10.231.$net.1
DST_IP=10.231.$net.2

hosts_up() {
	ip netns add "$SRC_NS" || return 1
	ip netns add "$DST_NS" || { ip netns del "$SRC_NS"; return 1; }
	ip link add "fs$$" type veth peer name "fd$$" || return 1
	ip link set "fs$$" netns "$SRC_NS" || return 1
	ip link set "fd$$" netns "$DST_NS" || return 1
	ip -n "$SRC_NS" addr add "$SRC_IP/30" dev "fs$$" || return 1
	ip -n "$DST_NS" addr add "$DST_IP/30" dev "fd$$" || return 1
	ip -n "$SRC_NS" link set lo up && ip -n "$DST_NS" link set lo up || return 1
	ip -n "$SRC_NS" link set "fs$$" up && ip -n "$DST_NS" link set "fd$$" up || return 1
}

hosts_down() {
	ip netns del "$SRC_NS" 2>/dev/null
	ip netns del "$DST_NS" 2>/dev/null
	return 0
}

run_src() { nsenter --net="/run/netns/$SRC_NS" "$@"; }
run_dst() { nsenter --net="/run/netns/$DST_NS" "$@"; }

# wait_for CMD... : retry CMD every 10 ms for at most WAIT_S seconds (default 20).
wait_for() {
	local i
	for ((i = 0; i < ${WAIT_S:-20} * 100; i++)); do
		"$@" 2>/dev/null && return 0
		sleep 0.01
	done
	echo "timed out waiting for: $*" >&2
	return 1
}
