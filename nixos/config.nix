# services.pullnix option values -> the content of /etc/pullnix/config.json.
# Plain builtins (no nixpkgs lib), so CI (nixos/check.sh) can run it and validate the result
# against the JSON Schema without nixpkgs.
#
# Argument: the option values as plain data, shaped like the options in options.nix
# (services.pullnix.*), with Nix paths already turned into strings.
# Result: an attrset for builtins.toJSON. Every option with a `key` in options.nix is written
# (defaults included, so the file says everything it means), then `settings` is merged over it.
cfg:
let
  inherit (builtins)
    attrNames
    foldl'
    isAttrs
    listToAttrs
    map
    ;

  decls = (import ./options.nix).decls;

  inherit (import ./attrpath.nix) getIn setIn;

  recursiveUpdate =
    lhs: rhs:
    lhs
    // listToAttrs (
      map (k: {
        name = k;
        value =
          if isAttrs rhs.${k} && lhs ? ${k} && isAttrs lhs.${k} then
            recursiveUpdate lhs.${k} rhs.${k}
          else
            rhs.${k};
      }) (attrNames rhs)
    );

  # Only the schema's fields of each key (a submodule value could carry more in the future).
  normalise =
    key: value:
    if key == [ "operators" "keys" ] then
      map (k: {
        inherit (k) id publicKey;
      }) value
    else if key == [ "trust" "allowedSigners" ] then
      map (s: {
        inherit (s) principal key;
        validAfter = s.validAfter or null;
        validBefore = s.validBefore or null;
      }) value
    else
      value;

  written = foldl' (
    acc: d: if d ? key then setIn d.key (normalise d.key (getIn d.loc cfg)) acc else acc
  ) { } decls;
in
recursiveUpdate written (cfg.settings or { })
