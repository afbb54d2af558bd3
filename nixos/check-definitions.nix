# What the JSON Schema's validation keywords cannot say about services.pullnix.checks (the daemons
# refuse the same at config load, shared/src/config/config.ts checkProblems): the fields each type
# needs and the fields it does not use, names that are not the built-in checks', and a timeoutSec
# within verify.timeoutSec. The per-type fields and the reserved names are not written here: they
# are the schema's own annotations (`x-pullnix-kinds` on a check, `x-pullnix-reserved` on checks,
# shared/schema/config.schema.json), which the daemons read too. Plain builtins, so CI
# (nixos/check.sh, no nixpkgs) checks it too; module.nix turns the result into an assertion.
#
# Argument: { checks = { <name> = { type, argv, url, host, port, unit, timeoutSec, ... }; }; verifyTimeoutSec; }
# Result: a list of problems, each naming services.pullnix.settings.checks.<name>[.<field>].
{ checks, verifyTimeoutSec }:
let
  inherit (builtins) attrNames concatLists concatStringsSep elem filter isList map match;
  checksNode = (import ./schema.nix).node [ "checks" ];
  kinds = checksNode.additionalProperties."x-pullnix-kinds";
  reserved = checksNode."x-pullnix-reserved";
  # Every field some type uses; a field no type uses (timeoutSec) belongs to all.
  fields = attrNames (builtins.listToAttrs (map (f: { name = f; value = null; }) (concatLists (map (k: kinds.${k}.uses) (attrNames kinds)))));
  problemsOf =
    name:
    let
      c = checks.${name};
      at = "services.pullnix.settings.checks.${name}";
      get = field: c.${field} or null;
      isSet = field: let v = get field; in if isList v then v != [ ] else v != null;
      kind = kinds.${c.type} or { uses = [ ]; requires = [ ]; };
      when = cond: msg: if cond then [ msg ] else [ ];
      missing = field:
        if isList (get field) then "${at}.${field} must not be empty for a ${c.type} check"
        else "${at}.${field} is required for a ${c.type} check";
    in
    when (elem name reserved) "${at}: '${name}' is the name of a built-in check"
    ++ when (match "[A-Za-z0-9_-]{1,64}" name == null) "${at}: a check name is 1 to 64 letters, digits, '_' or '-'"
    ++ map missing (filter (f: !(isSet f)) kind.requires)
    ++ map (f: "${at}.${f} is not used by a ${c.type} check (it uses ${concatStringsSep ", " kind.uses})") (
      filter (f: isSet f && !(elem f kind.uses)) fields
    )
    ++ when ((c.timeoutSec or 10) > verifyTimeoutSec) "${at}.timeoutSec (${toString c.timeoutSec}) is longer than services.pullnix.settings.verify.timeoutSec (${toString verifyTimeoutSec})";
in
concatLists (map problemsOf (attrNames checks))
