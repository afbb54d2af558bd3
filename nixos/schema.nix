# The configuration file's JSON Schema (shared/schema/config.schema.json, the single source of
# truth for the config shape) seen from Nix, with plain builtins only (no nixpkgs lib), so the
# NixOS module, the options-document generator and CI (nixos/check.sh, which has no nixpkgs)
# all use the same code.
#
#   schema        the parsed schema
#   node path     the schema node of a config key, e.g. node [ "repository" "branch" ]
#   default path  that key's schema default (throws if it has none)
#   regex node    the node's `pattern` as a builtins.match (POSIX ERE, whole string) regex
#   typeText node a human description of the node's type, for the options document
#   validate v    the list of problems of a whole config value (empty: valid), each naming the key
#
# The validator implements exactly the keywords the schema uses and throws on any other, so a
# schema change that needs new checking cannot be silently ignored here.
let
  inherit (builtins)
    attrNames
    concatLists
    concatStringsSep
    elem
    filter
    foldl'
    genList
    isAttrs
    isBool
    isFloat
    isInt
    isList
    isNull
    isString
    length
    match
    stringLength
    substring
    toJSON
    ;

  schema = builtins.fromJSON (builtins.readFile ../shared/schema/config.schema.json);

  node =
    path:
    foldl' (
      n: key:
      n.properties.${key}
        or (throw "pullnix: the config schema has no key ${concatStringsSep "." path} (no `${key}` there)")
    ) schema path;

  default =
    path:
    let
      n = node path;
    in
    if n ? default then
      n.default
    else
      throw "pullnix: the config schema has no default for ${concatStringsSep "." path}";

  # JSON Schema patterns are ECMAScript regexes that match anywhere in the string; builtins.match
  # is POSIX ERE (std::regex extended) and must match the whole string. The schema's patterns use
  # only the common subset (classes, anchors, \., {m,n}), so anchoring is the only translation.
  regex =
    n:
    let
      p = n.pattern;
      len = stringLength p;
      startAnchored = substring 0 1 p == "^";
      endAnchored = len > 0 && substring (len - 1) 1 p == "$" && substring (len - 2) 1 p != "\\";
      core = substring (if startAnchored then 1 else 0) (
        len - (if startAnchored then 1 else 0) - (if endAnchored then 1 else 0)
      ) p;
    in
    (if startAnchored then "" else ".*") + "(" + core + ")" + (if endAnchored then "" else ".*");

  typesOf = n: if !(n ? type) then [ ] else if isList n.type then n.type else [ n.type ];

  showJSON = toJSON;

  typeText =
    n:
    let
      ts = typesOf n;
      nullable = elem "null" ts;
      nonNull = filter (t: t != "null") ts;
      base =
        if n ? enum then
          "one of " + concatStringsSep ", " (map showJSON n.enum)
        else if nonNull == [ "string" ] then
          "string"
          + (if n ? pattern then " matching the pattern `${n.pattern}`" else "")
          + (
            if n ? minLength && n ? maxLength then
              ", ${toString n.minLength} to ${toString n.maxLength} characters"
            else if n ? maxLength then
              ", at most ${toString n.maxLength} characters"
            else if n ? minLength then
              ", at least ${toString n.minLength} characters"
            else
              ""
          )
        else if nonNull == [ "integer" ] then
          if n ? minimum && n ? maximum then
            "integer between ${toString n.minimum} and ${toString n.maximum} (both inclusive)"
          else if n ? minimum then
            "integer, at least ${toString n.minimum}"
          else
            "integer"
        else if nonNull == [ "number" ] then
          if n ? minimum && n ? maximum then
            "number between ${toJSON n.minimum} and ${toJSON n.maximum} (both inclusive)"
          else
            "number"
        else if nonNull == [ "boolean" ] then
          "boolean"
        else if nonNull == [ "array" ] then
          "list of (${typeText n.items})"
          + (if n ? maxItems then ", at most ${toString n.maxItems} elements" else "")
        else if nonNull == [ "object" ] && isAttrs (n.additionalProperties or null) then
          "attribute set of (${typeText n.additionalProperties})"
        else if nonNull == [ "object" ] then
          "submodule"
        else
          throw "pullnix: schema.nix cannot describe type ${toJSON ts}";
    in
    if nullable then "null or ${base}" else base;

  # ---- validation --------------------------------------------------------------------------

  known = [
    "$schema"
    "$id"
    "title"
    "description"
    "default"
    "type"
    "enum"
    "pattern"
    "minLength"
    "maxLength"
    "minimum"
    "maximum"
    "items"
    "minItems"
    "maxItems"
    "maxProperties"
    "properties"
    "required"
    "additionalProperties"
    # pullnix's own annotations (no validation of their own here or in ajv; check-definitions.nix
    # and the daemons' config.ts read them)
    "x-pullnix-kinds"
    "x-pullnix-reserved"
  ];

  typeOk =
    t: v:
    if t == "string" then
      isString v
    else if t == "integer" then
      isInt v
    else if t == "number" then
      isInt v || isFloat v
    else if t == "boolean" then
      isBool v
    else if t == "null" then
      isNull v
    else if t == "array" then
      isList v
    else if t == "object" then
      isAttrs v
    else
      throw "pullnix: schema.nix does not know the JSON type ${t}";

  optional = cond: msg: if cond then [ msg ] else [ ];

  showPath =
    path:
    if path == [ ] then
      "(top level)"
    else
      foldl' (acc: k: if acc == "" then k else if substring 0 1 k == "[" then acc + k else "${acc}.${k}") "" path;

  check =
    path: n: v:
    let
      unknown = filter (k: !(elem k known)) (attrNames n);
      where = showPath path;
      ts = typesOf n;
      typeProblems = optional (ts != [ ] && !(builtins.any (t: typeOk t v) ts)) "${where}: expected ${typeText n}, got ${toJSON v}";
    in
    if unknown != [ ] then
      throw "pullnix: schema.nix does not implement the JSON Schema keyword(s) ${toJSON unknown} (at ${where}); extend its validator"
    else if typeProblems != [ ] then
      typeProblems
    else
      optional (n ? enum && !(elem v n.enum)) "${where}: expected one of ${
        concatStringsSep ", " (map toJSON n.enum)
      }, got ${toJSON v}"
      ++ (
        if isString v then
          optional (n ? pattern && match (regex n) v == null) "${where}: ${toJSON v} does not match the pattern ${n.pattern}"
          ++ optional (n ? minLength && stringLength v < n.minLength) "${where}: must be at least ${toString n.minLength} character(s) long"
          ++ optional (n ? maxLength && stringLength v > n.maxLength) "${where}: must be at most ${toString n.maxLength} characters long"
        else
          [ ]
      )
      ++ (
        if isInt v || isFloat v then
          optional (n ? minimum && v < n.minimum) "${where}: must be at least ${toString n.minimum}, got ${toJSON v}"
          ++ optional (n ? maximum && v > n.maximum) "${where}: must be at most ${toString n.maximum}, got ${toJSON v}"
        else
          [ ]
      )
      ++ (
        if isList v then
          optional (n ? maxItems && length v > n.maxItems) "${where}: at most ${toString n.maxItems} elements allowed"
          ++ optional (n ? minItems && length v < n.minItems) "${where}: at least ${toString n.minItems} element(s) required"
          ++ (
            if n ? items then
              concatLists (genList (i: check (path ++ [ "[${toString i}]" ]) n.items (builtins.elemAt v i)) (length v))
            else
              [ ]
          )
        else
          [ ]
      )
      ++ (
        if isAttrs v then
          let
            props = n.properties or { };
          in
          optional (n ? maxProperties && length (attrNames v) > n.maxProperties) "${where}: at most ${toString n.maxProperties} keys allowed"
          ++ map (k: "${showPath (path ++ [ k ])}: required key missing") (
            filter (k: !(v ? ${k})) (n.required or [ ])
          )
          ++ (
            if (n.additionalProperties or true) == false then
              map (
                k:
                "${showPath (path ++ [ k ])}: unknown key (known keys here: ${concatStringsSep ", " (attrNames props)})"
              ) (filter (k: !(props ? ${k})) (attrNames v))
            else if isAttrs (n.additionalProperties or null) then
              concatLists (map (k: check (path ++ [ k ]) n.additionalProperties v.${k}) (filter (k: !(props ? ${k})) (attrNames v)))
            else
              [ ]
          )
          ++ concatLists (map (k: check (path ++ [ k ]) props.${k} v.${k}) (filter (k: props ? ${k}) (attrNames v)))
        else
          [ ]
      );
in
{
  inherit
    schema
    node
    default
    regex
    typeText
    ;
  validate = v: check [ ] schema v;
}
