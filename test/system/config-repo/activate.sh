#!/bin/bash
# The activation script of a bed generation ($toplevel/activate), shaped like NixOS's
# (nixos/modules/system/activation/activation-script.nix): every snippet runs, a failing one is
# remembered, and at the very end /run/current-system is pointed at this system WHATEVER THE
# STATUS; then it exits with the status. switch-to-configuration turns a non-zero exit into 2.
export PATH=/usr/bin:/usr/sbin:/bin:/sbin
systemConfig=$(readlink -f "$(dirname "$(readlink -f "$0")")")
manifest=/run/nixos/bed-installed-files
_status=0
trap "_status=1" ERR

# snippet "etc": remove what the previous activation installed, install this generation's files
# (units included; switch-to-configuration runs daemon-reload after this script).
mkdir -p /run/nixos
if [ -f "$manifest" ]; then
  while IFS= read -r f; do rm -f "/etc/$f"; done <"$manifest"
fi
: >"$manifest.tmp"
while IFS= read -r f; do
  mkdir -p "/etc/$(dirname "$f")"
  if [ -L "$systemConfig/etc/$f" ]; then
    ln -sfn "$(readlink "$systemConfig/etc/$f")" "/etc/$f"
  else
    cp --remove-destination "$systemConfig/etc/$f" "/etc/$f"
  fi
  printf '%s\n' "$f" >>"$manifest.tmp"
done < <(cd "$systemConfig/etc" && find . \( -type f -o -type l \) -printf '%P\n')
mv "$manifest.tmp" "$manifest"

# snippet "bed-fail": a generation built with activationFails carries the message in this file.
if [ -f "$systemConfig/activation-fails" ]; then
  echo "Activation script snippet 'bed-fail' failed: $(cat "$systemConfig/activation-fails")" >&2
  false
fi

# Make this configuration the current configuration, whatever happened above.
ln -sfn "$systemConfig" /run/current-system.tmp && mv -T /run/current-system.tmp /run/current-system

exit $_status
