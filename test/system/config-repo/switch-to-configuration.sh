#!/bin/bash
# switch-to-configuration of the pullnix system test bed.
#
# The stand-in of the bed: it does, with systemctl on the container's real systemd, what NixOS's
# switch-to-configuration does for the parts pullnix relies on, and it is as harsh as the real one
# on each point of ../shared/NIXOS.md (nixpkgs switch-to-configuration-ng, main.rs):
#   - exclusive lock on /run/nixos/switch-to-configuration.lock;
#   - refuses with exit 100, before touching anything, when the generation's init interface
#     (`init-interface-version`) differs from the running system's ("reboot needed");
#   - only units active (or activating) when it starts are considered for stop/restart;
#   - a changed unit with X-RestartIfChanged=false is left alone ("NOT restarting the following
#     changed units"), X-ReloadIfChanged=true is reloaded, X-StopIfChanged=false is restarted once,
#     any other changed unit is stopped on its old definition and started on the new one;
#   - a unit that is no longer in the configuration is stopped unless X-StopOnRemoval=false;
#   - runs the generation's activation script (`$toplevel/activate`, the bed's activate.sh): it
#     installs the units and etc files and, at its very end and WHATEVER ITS STATUS, points
#     /run/current-system at the new system (activation-script.nix). A failed activation script
#     makes the result exit 2, and, like switch-to-configuration-ng, the switch goes on;
#   - `systemctl daemon-reload`, then reloads/restarts, then starts the active targets
#     (multi-user.target), which starts new units wanted by them;
#   - `systemctl reset-failed` before the units are started, then exit 4 when any unit of the
#     system failed (or is stuck auto-restarting after a non-zero exit), decided after
#     /run/current-system was repointed: "live = new toplevel" proves nothing, only the exit does;
#   - every progress line goes to stderr, and a failed write (EPIPE: whoever read a --pipe'd stdio
#     died) ends it at once with exit 101, half-way, the units it stopped left stopped (nixpkgs
#     #462179): whoever runs it must not tie its stdio to a process that may die;
#   - `boot` only installs the bootloader for this system (NixOS: installBootLoader with the
#     toplevel as the default configuration): the bed's systemd-boot or GRUB builder
#     (test/system/lib/bed-bootloader.ts, written from nixpkgs' systemd-boot-builder.py and
#     install-grub.pl) writes every profile generation's entry and makes this system the default;
#     one line is appended to /boot/pullnix-bed/log. The bed's firmware step boots the one-shot
#     entry once, else the default, as systemd-boot's boot.c and NixOS's grub.cfg do.
set -uo pipefail
export PATH=/usr/bin:/usr/sbin:/bin:/sbin

action=${1:-}
toplevel=$(readlink -f "$(dirname "$(readlink -f "$0")")/..")
boot_dir=/boot/pullnix-bed
profile=/nix/var/nix/profiles/system

# Services ignore SIGPIPE, so a write to a dead reader fails with EPIPE: die then, as stc-ng does.
say() { printf '%s\n' "$*" >&2 || exit 101; }

case "$action" in
  switch | boot | test | dry-activate) ;;
  *)
    say "Usage: $0 [switch|boot|test|dry-activate]"
    exit 1
    ;;
esac

mkdir -p /run/nixos
exec 9>/run/nixos/switch-to-configuration.lock
flock -x 9

# Evidence for the tests (not part of the real thing): one line per step in
# /run/nixos/bed-activation.log, with the cgroup this activation runs in.
cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup)
note() { printf '%s %s pid=%s cgroup=%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$action" "$$" "$cgroup" "$*" >>/run/nixos/bed-activation.log; }
note "start toplevel=$toplevel"

install_bootloader() {
  [ -L "$profile" ] || {
    say "switch-to-configuration: no system profile at $profile"
    return 1
  }
  mkdir -p "$boot_dir"
  # A generation may make its bootloader installation slow (like grub-install on a slow disk).
  if [ -f "$toplevel/boot-install-delay" ]; then sleep "$(cat "$toplevel/boot-install-delay")"; fi
  /bed/boot-tools/bin/pullnix-bed-install-bootloader "$toplevel" || return 1
  printf '%s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$(basename "$(readlink "$profile")")" "$toplevel" >>"$boot_dir/log"
  sync /boot
  say "boot default: $toplevel"
}

if [ "$action" = boot ] || [ "$action" = switch ]; then
  install_bootloader || exit 1
  note "boot-default=$toplevel"
  [ "$action" = boot ] && exit 0
fi

old=$(readlink -f /run/current-system 2>/dev/null || true)
[ -n "$old" ] && [ -d "$old/etc/systemd/system" ] || old=
new_units_dir=$toplevel/etc/systemd/system

interface() { cat "$1/init-interface-version" 2>/dev/null || echo '(none)'; }
if [ -n "$old" ] && [ "$(interface "$old")" != "$(interface "$toplevel")" ]; then
  say "This system has init interface $(interface "$toplevel"), the running one $(interface "$old"): it cannot be switched to live; reboot into it."
  note "exit=100 init-interface"
  exit 100
fi

list_units() { # the unit files (not .wants links) of a generation's etc/systemd/system
  [ -n "$1" ] && [ -d "$1" ] && find "$1" -maxdepth 1 -type f -printf '%f\n' | sort
}
key() { # FILE SECTION KEY -> last value of KEY in [SECTION]
  awk -v sect="[$2]" -v key="$3" '
    /^\[/ { in_sect = ($0 == sect); next }
    in_sect && index($0, key "=") == 1 { value = substr($0, length(key) + 2) }
    END { print value }' "$1"
}
is_active() {
  local s
  s=$(systemctl show -P ActiveState -- "$1" 2>/dev/null)
  [ "$s" = active ] || [ "$s" = activating ] || [ "$s" = reloading ]
}
content() { # unit text without the cosmetic [Unit] keys switch-to-configuration ignores
  grep -v -E '^(Description|Documentation|OnFailure|OnSuccess)=' "$1"
}
contains() {
  local x=$1
  shift
  for y; do [ "$x" = "$y" ] && return 0; done
  return 1
}

mapfile -t old_units < <(list_units "${old:+$old/etc/systemd/system}")
mapfile -t new_units < <(list_units "$new_units_dir")

to_stop=() to_start=() to_restart=() to_reload=() not_restarted=() not_stopped=()
for u in "${old_units[@]}"; do
  is_active "$u" || continue
  if ! contains "$u" "${new_units[@]}"; then
    if [ "$(key "$old/etc/systemd/system/$u" Unit X-StopOnRemoval)" = false ]; then
      not_stopped+=("$u")
    else
      to_stop+=("$u")
    fi
    continue
  fi
  if cmp -s <(content "$old/etc/systemd/system/$u") <(content "$new_units_dir/$u"); then continue; fi
  f=$new_units_dir/$u
  if [ "$(key "$f" Service X-ReloadIfChanged)" = true ]; then
    to_reload+=("$u")
  elif [ "$(key "$f" Service X-RestartIfChanged)" = false ] || [ "$(key "$f" Unit RefuseManualStop)" = true ] || [ "$(key "$f" Unit X-OnlyManualStart)" = true ]; then
    not_restarted+=("$u")
  elif [ "$(key "$f" Service X-StopIfChanged)" = false ] || [[ $u != *.service ]]; then
    to_restart+=("$u")
  else
    to_stop+=("$u")
    to_start+=("$u")
  fi
done

if [ "$action" = dry-activate ]; then
  [ ${#to_stop[@]} -eq 0 ] || say "would stop the following units: ${to_stop[*]}"
  [ ${#not_restarted[@]} -eq 0 ] || say "would NOT restart the following changed units: ${not_restarted[*]}"
  [ ${#to_restart[@]} -eq 0 ] || say "would restart the following units: ${to_restart[*]}"
  [ ${#to_start[@]} -eq 0 ] || say "would start the following units: ${to_start[*]}"
  exit 0
fi

if [ ${#to_stop[@]} -gt 0 ]; then
  say "stopping the following units: ${to_stop[*]}"
  systemctl stop -- "${to_stop[@]}"
fi
if [ ${#not_stopped[@]} -gt 0 ]; then
  say "NOT stopping the following removed units (X-StopOnRemoval=false): ${not_stopped[*]}"
fi

say "activating the configuration..."
rc=0
if ! "$toplevel/activate"; then
  say "Failed to run activate script"
  rc=2
fi
note "activate-exit=$rc current-system=$(readlink -f /run/current-system)"

# Forget about previously failed units (switch-to-configuration does): a unit that failed before
# and fails again when the targets are started below counts as failed again.
systemctl reset-failed
systemctl daemon-reload

if [ ${#not_restarted[@]} -gt 0 ]; then
  say "NOT restarting the following changed units: $(IFS=,; echo "${not_restarted[*]}" | sed 's/,/, /g')"
fi
note "not-restarted=$(IFS=,; echo "${not_restarted[*]}") stopped=$(IFS=,; echo "${to_stop[*]}") restarted=$(IFS=,; echo "${to_restart[*]}") not-stopped=$(IFS=,; echo "${not_stopped[*]}")"
if [ ${#to_reload[@]} -gt 0 ]; then
  say "reloading the following units: ${to_reload[*]}"
  systemctl reload -- "${to_reload[@]}" || rc=4
fi
if [ ${#to_restart[@]} -gt 0 ]; then
  say "restarting the following units: ${to_restart[*]}"
  systemctl restart -- "${to_restart[@]}" || rc=4
fi
# Starting the active targets starts new units wanted by them (and the changed ones stopped above).
start=("${to_start[@]}" multi-user.target)
say "starting the following units: ${start[*]}"
systemctl start -- "${start[@]}" || rc=4

# Every unit of the system counts, not only this generation's: failed, or auto-restarting after
# a main process that did not exit 0.
failed=()
while read -r u _; do
  [ -n "$u" ] || continue
  if [ "$(systemctl show -P ActiveState -- "$u")" = failed ]; then
    failed+=("$u")
  elif [ "$(systemctl show -P SubState -- "$u")" = auto-restart ] && [ "$(systemctl show -P ExecMainStatus -- "$u")" != 0 ]; then
    failed+=("$u")
  fi
done < <(systemctl list-units --all --plain --no-legend --no-pager --state=failed,auto-restart)
if [ ${#failed[@]} -gt 0 ]; then
  say "the following units failed: ${failed[*]}"
  rc=4
fi
note "exit=$rc failed=$(IFS=,; echo "${failed[*]}")"
[ $rc -ne 0 ] || say "switch-to-configuration $action: done ($toplevel)"
exit $rc
