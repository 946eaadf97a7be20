#!/bin/bash
# RHEL 8/9 and other NetworkManager hosts: add the mirror-vip VIP to the connection profile of
# the primary interface, so it survives reboots, DHCP renewals and nm-cloud-setup.
#   usage: sudo ./mirror-vip-nmcli.sh VIP [INTERFACE]      (INTERFACE: default-route interface)
#   undo:  sudo nmcli connection modify "<profile>" -ipv4.addresses VIP/32
#          sudo nmcli device reapply <interface>
# NetworkManager has no address labels: the VIP is added without the label <interface>:1, so
# set `vip` in mirror-vip's settings explicitly (docs/host/README.md).
set -euo pipefail
VIP="${1:?usage: $0 VIP [INTERFACE]}"
IFACE="${2:-$(ip -o -4 route show to default | awk '{print $5; exit}')}"
CONN="$(nmcli -g GENERAL.CONNECTION device show "$IFACE")"
if [ -z "$CONN" ]; then
  echo "no NetworkManager connection is active on $IFACE" >&2
  exit 1
fi
# "+" appends: DHCP (ipv4.method auto) and any other static address stay as they are.
nmcli connection modify "$CONN" +ipv4.addresses "$VIP/32"
# Apply the profile to the running interface without taking it down.
nmcli device reapply "$IFACE"
ip -4 addr show dev "$IFACE" to "$VIP/32"
