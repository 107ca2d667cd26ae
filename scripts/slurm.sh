#!/usr/bin/env bash
# A real single-node Slurm on this machine for the dispatch tests (tests/test_dispatch_slurm.py).
#
#   bash scripts/slurm.sh start   install Debian's slurm-wlm and munge if needed (apt-get, root or passwordless
#                                 sudo), write a localhost slurm.conf under build/slurm/, start munged,
#                                 slurmctld and slurmd (as root, no systemd) and wait for the node to be idle
#   bash scripts/slurm.sh stop    stop the daemons started by "start"
#
# Writes build/slurm.status:
#   "ok <path to slurm.conf>"   Slurm answers; tests export SLURM_CONF=<path> for the client commands
#   "unavailable: <reason>"     it cannot run here; only the Slurm tests are skipped, printing the reason
# Exits 0 in both cases so that the test run itself reports the outcome.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)/build/slurm
status=build/slurm.status
mkdir -p "$root"

unavailable() {
  echo "unavailable: $*" > "$status"
  echo "[slurm] WARNING: $*; the Slurm tests will be skipped" >&2
  exit 0
}

SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
fi

stop() {
  [ "$SUDO" = "none" ] && return 0
  for name in slurmd slurmctld; do
    if [ -f "$root/$name.pid" ]; then
      $SUDO kill "$(cat "$root/$name.pid")" 2>/dev/null || true
      rm -f "$root/$name.pid"
    fi
    $SUDO pkill -f "^$name -f $root/slurm.conf" 2>/dev/null || true
  done
  for _ in $(seq 1 20); do
    pgrep -f "^slurm(ctld|d) -f $root/slurm.conf" >/dev/null || break
    sleep 0.5
  done
  $SUDO pkill -9 -f "^slurm(ctld|d) -f $root/slurm.conf" 2>/dev/null || true
  if [ -f "$root/munged.started" ]; then
    $SUDO pkill -x munged 2>/dev/null || true
    rm -f "$root/munged.started"
  fi
}

if [ "${1:-start}" = "stop" ]; then
  stop
  echo "[slurm] stopped"
  exit 0
fi

[ "$SUDO" = "none" ] && unavailable "not root and no passwordless sudo (slurmctld and slurmd run as root)"
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || unavailable "no apt-get to install slurm-wlm and munge"
  echo "[slurm] apt-get install -y slurm-wlm munge (log: build/slurm-install.log)"
  if ! { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q slurm-wlm munge; } \
      > build/slurm-install.log 2>&1; then
    tail -n 20 build/slurm-install.log >&2
    unavailable "apt-get install slurm-wlm munge failed (see build/slurm-install.log)"
  fi
fi

stop  # a previous start of this checkout
if [ ! -s /etc/munge/munge.key ]; then
  $SUDO mkdir -p /etc/munge
  $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
$SUDO chown munge:munge /etc/munge/munge.key 2>/dev/null || true
$SUDO chmod 400 /etc/munge/munge.key
$SUDO mkdir -p /run/munge /var/log/munge /var/lib/munge
$SUDO chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! pgrep -x munged >/dev/null; then
  $SUDO munged --force || unavailable "munged does not start"
  touch "$root/munged.started"
fi

cpus=$(nproc)
mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)
mkdir -p "$root/state" "$root/spool" "$root/log"
conf=$root/slurm.conf
cat > "$conf" <<EOF
ClusterName=asymlib
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation=$root/state
SlurmdSpoolDir=$root/spool
SlurmctldPidFile=$root/slurmctld.pid
SlurmdPidFile=$root/slurmd.pid
SlurmctldLogFile=$root/log/slurmctld.log
SlurmdLogFile=$root/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
KillWait=5
MinJobAge=600
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
export SLURM_CONF=$conf
$SUDO env SLURM_CONF="$conf" slurmctld -f "$conf" || unavailable "slurmctld does not start (see $root/log/slurmctld.log)"
$SUDO env SLURM_CONF="$conf" slurmd -f "$conf" || unavailable "slurmd does not start (see $root/log/slurmd.log)"
for _ in $(seq 1 30); do
  state=$(sinfo -h -o "%T" 2>/dev/null | head -n 1)
  if [ "$state" = "idle" ]; then
    echo "ok $conf" > "$status"
    echo "[slurm] localhost node idle ($(sinfo --version)); SLURM_CONF=$conf"
    exit 0
  fi
  sleep 1
done
unavailable "the Slurm node did not become idle within 30 s (state: ${state:-none}; see $root/log)"
