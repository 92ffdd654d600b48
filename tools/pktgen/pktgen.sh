#!/usr/bin/env bash
# The kernel's pktgen (/proc/net/pktgen, CONFIG_NET_PKTGEN) driven with xvs-pktgen's UDP
# profiles, for hosts whose kernel has it: a UDP flood of one size or IMIX, from source
# address and port ranges (in order or random), at a rate, for a count, on several threads
# (one kpktgend per CPU, one tx queue each), with an optional 802.1Q tag.
#
# Kernel pktgen sends UDP only: SYN floods, established TCP flows and the mix need
# `xvs-pktgen send`. Sizes here are on the wire with the FCS (64 = pktgen's pkt_size 60),
# as xvs-pktgen counts them.
#
# usage: tools/pktgen/pktgen.sh -i DEV -d DST -m DST_MAC [options] [--dry-run]
#   -s SRC[-SRC_MAX]     source addresses        (default 198.18.0.2)
#   -p PORT[-PORT_MAX]   source ports            (default 10000-10999)
#   -P PORT              destination port        (default 9000)
#   -z SIZE|imix         frame size, 64..1518, or imix (7:4:1 of 64, 570, 1518)
#   -r PPS               rate in frames a second, in all (default: flat out)
#   -n COUNT             frames per thread (default 1000000; 0: until stopped)
#   -t THREADS           threads (default 1), on CPUs FIRST_CPU.. (-f, default 0)
#   -v VLAN              802.1Q VLAN id
#   -R                   random source address and port within the ranges
#   --dry-run            print what would be written where, touch nothing (no root needed)
#
# This machine's kernel has no pktgen: the script is checked here by `bash -n` and by its
# dry run (tests/pktgen_scripts.rs), not by sending.
set -euo pipefail
dev="" dst="" dmac="" src="198.18.0.2" sport="10000-10999" dport=9000 size=64 rate="" count=1000000
threads=1 first_cpu=0 vlan="" random=0 dry=0
die() { echo "pktgen.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    -i) dev=$2; shift 2 ;;
    -d) dst=$2; shift 2 ;;
    -m) dmac=$2; shift 2 ;;
    -s) src=$2; shift 2 ;;
    -p) sport=$2; shift 2 ;;
    -P) dport=$2; shift 2 ;;
    -z) size=$2; shift 2 ;;
    -r) rate=$2; shift 2 ;;
    -n) count=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    -f) first_cpu=$2; shift 2 ;;
    -v) vlan=$2; shift 2 ;;
    -R) random=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[ -n "$dev" ] || die "-i DEV is needed"
[ -n "$dst" ] || die "-d DST is needed"
[ -n "$dmac" ] || die "-m DST_MAC is needed"
ipv4='^([0-9]{1,3}\.){3}[0-9]{1,3}$'
[[ $dst =~ $ipv4 ]] || die "-d: '$dst' is not an IPv4 address"
[[ $dmac =~ ^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$ ]] || die "-m: '$dmac' is not a MAC"
src_min=${src%%-*} src_max=${src##*-}
[[ $src_min =~ $ipv4 && $src_max =~ $ipv4 ]] || die "-s: '$src' is not ADDR or ADDR-ADDR"
sport_min=${sport%%-*} sport_max=${sport##*-}
[[ $sport_min =~ ^[0-9]+$ && $sport_max =~ ^[0-9]+$ && $sport_max -le 65535 && $sport_min -le $sport_max ]] ||
  die "-p: '$sport' is not PORT or PORT-PORT"
[[ $dport =~ ^[0-9]+$ && $dport -le 65535 ]] || die "-P: '$dport' is not a port"
[[ $threads =~ ^[0-9]+$ && $threads -ge 1 ]] || die "-t: '$threads' is not a thread count"
[[ $count =~ ^[0-9]+$ ]] || die "-n: '$count' is not a count"
if [ "$size" != imix ]; then
  [[ $size =~ ^[0-9]+$ && $size -ge 64 && $size -le 1518 ]] || die "-z: '$size' is not 64..1518 or imix"
fi
if [ -n "$rate" ]; then [[ $rate =~ ^[0-9]+$ && $rate -gt 0 ]] || die "-r: '$rate' is not a rate in frames a second"; fi
if [ -n "$vlan" ]; then [[ $vlan =~ ^[0-9]+$ && $vlan -ge 1 && $vlan -le 4094 ]] || die "-v: '$vlan' is not a VLAN id"; fi

PG=/proc/net/pktgen
# One write to a pktgen control file (or, dry, the line that would be written).
pgset() {
  local file=$1 cmd=$2
  if [ "$dry" = 1 ]; then
    echo "$file: $cmd"
    return
  fi
  echo "$cmd" > "$file"
  # pktgen answers every write in the file itself: "Result: OK: ..." or the error.
  if ! grep -q "Result: OK" "$file" 2>/dev/null && [ "$(basename "$file")" != pgctrl ]; then
    grep "Result:" "$file" >&2 || true
    die "pktgen refused '$cmd' in $file"
  fi
}

if [ "$dry" = 0 ]; then
  [ "$(id -u)" = 0 ] || die "needs root (or --dry-run)"
  [ -d $PG ] || modprobe pktgen 2>/dev/null || true
  [ -d $PG ] || die "this kernel has no pktgen ($PG; CONFIG_NET_PKTGEN); use xvs-pktgen send, or --dry-run"
  [ -e "/sys/class/net/$dev" ] || die "-i: no interface '$dev'"
fi

pgset $PG/pgctrl reset
for t in $(seq 0 $((threads - 1))); do
  cpu=$((first_cpu + t))
  thr=$PG/kpktgend_$cpu
  pgset "$thr" rem_device_all
  pgset "$thr" "add_device $dev@$t"
  d=$PG/$dev@$t
  pgset "$d" "count $count"
  pgset "$d" "clone_skb 0"
  pgset "$d" "burst 32"
  pgset "$d" "flag QUEUE_MAP_CPU"
  pgset "$d" "flag UDPCSUM"
  if [ "$size" = imix ]; then
    # pktgen's sizes leave the FCS out.
    pgset "$d" "imix_weights 60,7 566,4 1514,1"
  else
    pgset "$d" "pkt_size $((size - 4))"
  fi
  pgset "$d" "dst_mac $dmac"
  pgset "$d" "dst $dst"
  pgset "$d" "udp_dst_min $dport"
  pgset "$d" "udp_dst_max $dport"
  pgset "$d" "src_min $src_min"
  pgset "$d" "src_max $src_max"
  pgset "$d" "udp_src_min $sport_min"
  pgset "$d" "udp_src_max $sport_max"
  if [ "$random" = 1 ]; then
    pgset "$d" "flag IPSRC_RND"
    pgset "$d" "flag UDPSRC_RND"
  fi
  [ -z "$vlan" ] || pgset "$d" "vlan_id $vlan"
  # The rate in all, shared between the threads.
  [ -z "$rate" ] || pgset "$d" "ratep $(((rate + threads - 1) / threads))"
done
pgset $PG/pgctrl start
if [ "$dry" = 0 ]; then
  for t in $(seq 0 $((threads - 1))); do
    echo "$dev@$t: $(grep -A2 "Result:" "$PG/$dev@$t" | tr -s ' \n' ' ')"
  done
fi
