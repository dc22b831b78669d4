# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# An origin across a network, inside the test bed guest: nbd-server runs in
# a network namespace of its own ("the image server"), reached from the
# guest's root namespace ("the host") over a veth pair whose two ends are
# shaped with netem: a rate and half the round trip on each side.  Sourced
# by tests/dmtest/suite.sh and the benchmarks after guest-lib.sh.
#
#   netorigin_up PROFILE DEVICE   serve DEVICE read-only, shaped by PROFILE
#   netorigin_connect NBD         attach /dev/NBD to it (nbd-client)
#   netorigin_shape PROFILE       change the link of a running server
#   netorigin_kill, netorigin_serve   stop the server as a crash would, start it
#   netorigin_host_add N          simulated host N (1-250): a namespace of its own
#   netorigin_host_connect N NBD  attach /dev/NBD to the server from host N
#   netorigin_iscsi_serve, netorigin_iscsi_connect   the same over iSCSI (below)
#   netorigin_down                disconnect and remove it all
#
# The shaped link is the image server's: the hosts reach it through the
# root namespace, each over an unshaped veth pair and with a connection of
# its own, so that hosts booting at once share the server's rate as they
# would share an image server's uplink.
#
# Profiles: "datacenter" (1 Gbit/s, 0.5 ms round trip) and "wan" (25 Mbit/s,
# 20 ms round trip).  Under TCG the guest moves far less than 1 Gbit/s over
# veth: the datacenter profile is then bounded by the emulation, not by its
# shaper; the benchmarks say what it sustained.

NETORIGIN_NS=fvd-imgsrv
NETORIGIN_HOST_IF=fvd-h0
NETORIGIN_SRV_IF=fvd-s0
NETORIGIN_HOST_IP=10.77.0.1
NETORIGIN_SRV_IP=10.77.0.2
NETORIGIN_PORT=10809
NETORIGIN_CONF=/tmp/netorigin-nbd.conf
NETORIGIN_HOST_NS=fvd-host	# and the host's number

# netorigin_profile PROFILE: "RATE ONE-WAY-DELAY" as netem takes them
netorigin_profile() {
	case $1 in
	datacenter) echo "1gbit 250us" ;;
	wan) echo "25mbit 10ms" ;;
	*) echo "netorigin: unknown link profile '$1'" >&2; return 1 ;;
	esac
}

# netorigin_netem ADD|CHANGE PROFILE: shape both directions of the link
netorigin_netem() {
	local verb=$1 rate delay p
	p=$(netorigin_profile "$2") || return 1
	read -r rate delay <<<"$p"
	# A queue deep enough for a TCP window at the rate: no drops by netem.
	tc qdisc "$verb" dev $NETORIGIN_HOST_IF root netem delay "$delay" rate "$rate" limit 10000 &&
		ip netns exec $NETORIGIN_NS tc qdisc "$verb" dev $NETORIGIN_SRV_IF root \
			netem delay "$delay" rate "$rate" limit 10000
}

# netorigin_serve: start the server (again) on the namespace's address
netorigin_serve() {
	ip netns exec $NETORIGIN_NS nbd-server -C $NETORIGIN_CONF
}

# netorigin_kill: stop the server, as a crash would: its connections drop
netorigin_kill() {
	local pid
	for pid in $(netorigin_server_pids); do
		kill -KILL "$pid" 2>/dev/null || :
	done
	# gone when the namespace holds no process any more
	while [ -n "$(netorigin_server_pids)" ]; do
		sleep 0.1
	done
}

netorigin_up() {
	local profile=$1 device=$2
	modprobe veth && modprobe sch_netem && modprobe nbd nbds_max=32 || return 1
	ip link set lo up &&
		ip netns add $NETORIGIN_NS &&
		ip link add $NETORIGIN_HOST_IF type veth peer name $NETORIGIN_SRV_IF &&
		ip link set $NETORIGIN_SRV_IF netns $NETORIGIN_NS &&
		ip addr add $NETORIGIN_HOST_IP/24 dev $NETORIGIN_HOST_IF &&
		ip link set $NETORIGIN_HOST_IF up &&
		ip netns exec $NETORIGIN_NS ip link set lo up &&
		ip netns exec $NETORIGIN_NS ip addr add $NETORIGIN_SRV_IP/24 dev $NETORIGIN_SRV_IF &&
		ip netns exec $NETORIGIN_NS ip link set $NETORIGIN_SRV_IF up &&
		ip netns exec $NETORIGIN_NS ip route add 10.78.0.0/16 via $NETORIGIN_HOST_IP &&
		netorigin_netem add "$profile" || return 1
	cat >$NETORIGIN_CONF <<EOF
[generic]
user = root
group = root
listenaddr = $NETORIGIN_SRV_IP
port = $NETORIGIN_PORT
[origin]
exportname = $device
readonly = true
EOF
	netorigin_serve
}

netorigin_shape() {
	netorigin_netem change "$1"
}

# netorigin_connect NBD [NBD-CLIENT OPTIONS...]: /dev/NBD reads the origin
# over the link, failing I/O after 30 s without an answer.
netorigin_connect() {
	local nbd=$1
	shift
	nbd-client $NETORIGIN_SRV_IP $NETORIGIN_PORT /dev/"$nbd" -N origin -t 30 "$@" \
		>/dev/null
}

netorigin_host_add() {
	local n=$1 ns=$NETORIGIN_HOST_NS$1
	echo 1 >/proc/sys/net/ipv4/ip_forward &&
		ip netns add "$ns" &&
		ip link add fvd-r"$n" type veth peer name fvd-v"$n" &&
		ip link set fvd-v"$n" netns "$ns" &&
		ip addr add 10.78."$n".1/24 dev fvd-r"$n" &&
		ip link set fvd-r"$n" up &&
		ip netns exec "$ns" ip link set lo up &&
		ip netns exec "$ns" ip addr add 10.78."$n".2/24 dev fvd-v"$n" &&
		ip netns exec "$ns" ip link set fvd-v"$n" up &&
		ip netns exec "$ns" ip route add default via 10.78."$n".1
}

# nbd's netlink family exists in the first namespace only: from a host's
# namespace nbd-client configures the device by ioctl (-nonetlink) and
# stays to serve it, its socket in that namespace.
netorigin_host_connect() {
	ip netns exec $NETORIGIN_HOST_NS"$1" nbd-client $NETORIGIN_SRV_IP $NETORIGIN_PORT \
		/dev/"$2" -N origin -t 30 -nonetlink >/dev/null
}

# netorigin_server_pids: the processes of the image server's namespace
netorigin_server_pids() {
	ip netns pids $NETORIGIN_NS 2>/dev/null
}

# --- iSCSI, the second transport: the kernel's target (LIO) exports the
# device from the image server's namespace, open-iscsi's initiator logs in
# from the root namespace over the same shaped link.  LIO is set up through
# configfs directly (what targetcli writes for it); the portal is made from
# inside the server's namespace, so that it listens there.  iscsid speaks to
# the kernel over a netlink family that exists in the first network
# namespace only, so the initiator is the root namespace's: one host (the
# storms' hosts in namespaces of their own use NBD).
#
#   netorigin_iscsi_serve DEVICE   export DEVICE read-only (after netorigin_up)
#   netorigin_iscsi_connect        log in; prints the disk (/dev/sdX)
#   netorigin_iscsi_down           log out, stop iscsid, remove the export

NETORIGIN_IQN=iqn.2026-12.org.dm-fvd:origin
NETORIGIN_ISCSI_PORT=3260
NETORIGIN_BACKSTORE=/sys/kernel/config/target/core/iblock_0/fvdorigin
NETORIGIN_TPG=/sys/kernel/config/target/iscsi/$NETORIGIN_IQN/tpgt_1
NETORIGIN_ISCSID_PID=/run/fvd-iscsid.pid

netorigin_iscsi_serve() {
	local device=$1
	modprobe target_core_mod && modprobe target_core_iblock && modprobe iscsi_target_mod ||
		return 1
	mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config ||
		return 1
	mkdir -p $NETORIGIN_BACKSTORE &&
		echo "udev_path=$device,readonly=1" >$NETORIGIN_BACKSTORE/control &&
		echo 1 >$NETORIGIN_BACKSTORE/enable &&
		mkdir -p $NETORIGIN_TPG/lun/lun_0 &&
		ln -s $NETORIGIN_BACKSTORE $NETORIGIN_TPG/lun/lun_0/origin &&
		echo 0 >$NETORIGIN_TPG/attrib/authentication &&
		echo 1 >$NETORIGIN_TPG/attrib/generate_node_acls &&
		echo 1 >$NETORIGIN_TPG/attrib/cache_dynamic_acls &&
		echo 1 >$NETORIGIN_TPG/attrib/demo_mode_write_protect &&
		nsenter --net=/var/run/netns/$NETORIGIN_NS \
			mkdir "$NETORIGIN_TPG/np/$NETORIGIN_SRV_IP:$NETORIGIN_ISCSI_PORT" &&
		echo 1 >$NETORIGIN_TPG/enable
}

# The disk of the session's LUN 0, once the initiator's scan made it; the
# scan runs after the login returns.
netorigin_iscsi_disk() {
	local disk deadline=$((SECONDS + 60))
	while [ $SECONDS -lt $deadline ]; do
		for disk in /sys/class/iscsi_session/session*/device/target*/*:0/block/*; do
			[ -e "$disk" ] && [ -b /dev/"${disk##*/}" ] && echo /dev/"${disk##*/}" && return 0
		done
		read -r -t 0.01 <> <(:) || :
	done
	echo "netorigin: no disk appeared for the iSCSI session in 60 s" >&2
	return 1
}

# The guest's root is read-only: iscsid's configuration and node database
# (/etc/iscsi) live in a tmpfs mounted over it.  I/O fails 30 s after the
# connection is lost, as with nbd-client -t 30.
netorigin_iscsi_connect() {
	local portal=$NETORIGIN_SRV_IP:$NETORIGIN_ISCSI_PORT
	modprobe iscsi_tcp && modprobe sd_mod || return 1
	if [ ! -e $NETORIGIN_ISCSID_PID ]; then
		[[ $(</proc/mounts) == *" /etc/iscsi "* ]] || mount -t tmpfs tmpfs /etc/iscsi ||
			return 1
		mkdir -p /run/lock/iscsi
		echo "InitiatorName=iqn.2026-12.org.dm-fvd:host" >/etc/iscsi/initiatorname.iscsi
		cat >/etc/iscsi/iscsid.conf <<EOF
node.startup = manual
node.session.timeo.replacement_timeout = 30
node.conn[0].timeo.noop_out_interval = 5
node.conn[0].timeo.noop_out_timeout = 5
EOF
		iscsid -p $NETORIGIN_ISCSID_PID || return 1
	fi
	iscsiadm -m discovery -t sendtargets -p "$portal" >/dev/null &&
		iscsiadm -m node -T $NETORIGIN_IQN -p "$portal" --login >/dev/null &&
		netorigin_iscsi_disk
}

# Only what exists is acted on (it runs after every guest test).
netorigin_iscsi_down() {
	local np
	if [ -e $NETORIGIN_ISCSID_PID ]; then
		local pid deadline=$((SECONDS + 30))
		pid=$(<$NETORIGIN_ISCSID_PID)
		iscsiadm -m node --logoutall=all >/dev/null 2>&1 || :
		iscsiadm -k 0 >/dev/null 2>&1 || :
		# gone before its /etc/iscsi is unmounted
		while [ -e /proc/"$pid" ] && [ $SECONDS -lt $deadline ]; do
			read -r -t 0.05 <> <(:) || :
		done
		rm -f $NETORIGIN_ISCSID_PID
	fi
	[[ $(</proc/mounts) != *" /etc/iscsi "* ]] || umount /etc/iscsi || :
	if [ -d $NETORIGIN_TPG ]; then
		echo 0 >$NETORIGIN_TPG/enable 2>/dev/null || :
		for np in $NETORIGIN_TPG/np/*; do
			[ ! -d "$np" ] || rmdir "$np" || :
		done
		rm -f $NETORIGIN_TPG/lun/lun_0/origin
		rmdir $NETORIGIN_TPG/lun/lun_0 $NETORIGIN_TPG "${NETORIGIN_TPG%/*}" 2>/dev/null || :
	fi
	[ ! -d $NETORIGIN_BACKSTORE ] || rmdir $NETORIGIN_BACKSTORE "${NETORIGIN_BACKSTORE%/*}" || :
}

# Also from another shell than the one that connected: every NBD device
# with a connection (a pid in sysfs) is disconnected.  Called after every
# guest test: what is not there is seen in sysfs and /var/run/netns, without
# starting a process (each costs a few hundred ms under TCG).
netorigin_down() {
	local nbd pid ns
	netorigin_iscsi_down
	for nbd in /sys/block/nbd*; do
		[ ! -e "$nbd/pid" ] || nbd-client -d /dev/"${nbd##*/}" >/dev/null 2>&1 || :
	done
	if [ -e /var/run/netns/$NETORIGIN_NS ]; then
		for pid in $(netorigin_server_pids); do
			kill "$pid" 2>/dev/null || :
		done
		# gone before the device it served is removed
		while [ -n "$(netorigin_server_pids)" ]; do
			sleep 0.1
		done
		# The veth pairs go with the namespaces (callers may run under set -e).
		ip netns del $NETORIGIN_NS 2>/dev/null || :
	fi
	[ ! -e /sys/class/net/$NETORIGIN_HOST_IF ] || ip link del $NETORIGIN_HOST_IF 2>/dev/null || :
	for ns in /var/run/netns/$NETORIGIN_HOST_NS*; do
		[ ! -e "$ns" ] || ip netns del "${ns##*/}" 2>/dev/null || :
	done
	rm -f $NETORIGIN_CONF
}
