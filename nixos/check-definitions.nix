# What the JSON Schema cannot say about services.pullnix.checks (the daemons refuse the same at
# config load, shared/src/config/config.ts checkProblems): the fields each type needs, names that
# are not the built-in checks', and a timeoutSec within verify.timeoutSec. Plain builtins, so CI
# (nixos/check.sh, no nixpkgs) checks it too; module.nix turns the result into an assertion.
#
# Argument: { checks = { <name> = { type, argv, url, host, port, unit, timeoutSec, ... }; }; verifyTimeoutSec; }
# Result: a list of problems, each naming services.pullnix.settings.checks.<name>[.<field>].
{ checks, verifyTimeoutSec }:
let
  inherit (builtins) attrNames concatLists elem filter map match;
  problemsOf =
    name:
    let
      c = checks.${name};
      at = "services.pullnix.settings.checks.${name}";
      get = field: c.${field} or null;
      need = fields: map (f: "${at}.${f} is required for a ${c.type} check") (filter (f: get f == null) fields);
      when = cond: msg: if cond then [ msg ] else [ ];
    in
    when (elem name [ "git" "failed-units" ]) "${at}: '${name}' is the name of a built-in check"
    ++ when (match "[A-Za-z0-9_-]{1,64}" name == null) "${at}: a check name is 1 to 64 letters, digits, '_' or '-'"
    ++ when (c.type == "command" && (c.argv or [ ]) == [ ]) "${at}.argv must not be empty for a command check"
    ++ (if c.type == "http" then need [ "url" ] else [ ])
    ++ (if c.type == "tcp" then need [ "host" "port" ] else [ ])
    ++ (if c.type == "unit" then need [ "unit" ] else [ ])
    ++ when ((c.timeoutSec or 10) > verifyTimeoutSec) "${at}.timeoutSec (${toString c.timeoutSec}) is longer than services.pullnix.settings.verify.timeoutSec (${toString verifyTimeoutSec})";
in
concatLists (map problemsOf (attrNames checks))
