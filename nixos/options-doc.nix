# Renders docs/options.md (Markdown text) from options.nix and the config schema.
# Plain builtins: runs without nixpkgs, so CI can regenerate it and fail when the committed file
# is stale. Run through nixos/gen-options-doc.sh; do not edit docs/options.md by hand.
#
# Types and defaults shown here come from the same places module.nix takes them from
# (schema.nix for the schema-backed options, options.nix for the rest), so the document
# describes the options as the module declares them.
let
  inherit (builtins)
    attrNames
    concatStringsSep
    isAttrs
    isBool
    isFloat
    isInt
    isList
    isNull
    isString
    map
    match
    replaceStrings
    stringLength
    substring
    toJSON
    ;

  schema = import ./schema.nix;
  inherit (import ./options.nix) decls;

  # ---- Nix value -> Nix expression text ----------------------------------------------------
  nixString = s: replaceStrings [ "\${" ] [ "\\\${" ] (toJSON s);
  nixName = k: if match "[A-Za-z_][A-Za-z0-9_'-]*" k != null then k else nixString k;
  toNix =
    v:
    if isNull v then
      "null"
    else if isBool v then
      (if v then "true" else "false")
    else if isInt v then
      toString v
    else if isFloat v then
      toJSON v
    else if isString v then
      nixString v
    else if isList v then
      (if v == [ ] then "[ ]" else "[ ${concatStringsSep " " (map toNix v)} ]")
    else if isAttrs v then
      (
        if v == { } then
          "{ }"
        else
          "{ ${concatStringsSep " " (map (k: "${nixName k} = ${toNix v.${k}};") (attrNames v))} }"
      )
    else
      throw "options-doc.nix: cannot show ${toJSON v}";

  code = s: "`${s}`";

  trimNewline =
    s:
    let
      len = stringLength s;
    in
    if len > 0 && substring (len - 1) 1 s == "\n" then trimNewline (substring 0 (len - 1) s) else s;

  # ---- one option --------------------------------------------------------------------------
  render =
    d:
    let
      kind = d.kind or null;
      n = schema.node d.key;
      # Config-file options live in settings (options.nix); the three others at their loc.
      name = "services.pullnix." + concatStringsSep "." (if d ? key then [ "settings" ] ++ d.key else d.loc);
      # As lib.mkEnableOption and lib.mkPackageOption word them.
      description =
        if kind == "enable" then
          "Whether to enable ${d.enableName}."
        else if kind == "package" then
          "The pullnix package to use. ${d.extraDescription}"
        else
          d.description or (n.description or "");
      type =
        if kind == "enable" then
          "boolean"
        else if kind == "package" then
          "package"
        else if kind == "settings" then
          "open submodule of (JSON value): the typed options below, and any other key of the configuration file"
        else if (d.nixType or null) == "pathOrNull" then
          "null or absolute path (a string, or a Nix path value copied to the store)"
        else
          schema.typeText n;
      default =
        if kind == "enable" then
          code "false"
        else if kind == "package" then
          code "pkgs.pullnix"
        else if kind == "settings" then
          code "{ }"
        else if d ? defaultText then
          code d.defaultText
        else if d ? default then
          code (toNix d.default)
        else if n ? default then
          code (toNix n.default)
        else
          "none: this option must be set";
      example =
        if kind == "enable" then
          [ (code "true") ]
        else if d ? example then
          [ (code (toNix d.example)) ]
        else
          [ ];
      fieldLines =
        header: props:
        [ header ]
        ++ map (
          f:
          let
            p = props.${f};
          in
          "  - ${code f} (${schema.typeText p}, ${
            if p ? default then "default ${code (toNix p.default)}" else "required"
          }): ${
            (d.itemDescriptions or { }).${f} or (p.description or "")
          }"
        ) (attrNames props);
      fields =
        if kind == null && n ? items && (n.items.properties or null) != null then
          fieldLines "- Each element has:" n.items.properties
        else if kind == null && n ? properties then
          fieldLines "- Fields:" n.properties
        else
          [ ];
    in
    concatStringsSep "\n" (
      [
        "## ${code name}"
        ""
        (trimNewline description)
        ""
        "- Type: ${type}"
      ]
      ++ fields
      ++ [ "- Default: ${default}" ]
      ++ map (e: "- Example: ${e}") example
      ++ (if d ? key then [ "- Config file key: ${code (concatStringsSep "." d.key)}" ] else [ ])
    );

  # Schema keys that have no option of their own (reachable through `settings`, or fixed).
  covered = map (d: concatStringsSep "." d.key) (builtins.filter (d: d ? key) decls);
  leafKeys =
    prefix: node:
    if (node.type or null) == "object" && node ? properties then
      builtins.concatLists (map (k: leafKeys (prefix ++ [ k ]) node.properties.${k}) (attrNames node.properties))
    else
      [ (concatStringsSep "." prefix) ];
  uncovered = builtins.filter (k: !(builtins.elem k covered)) (leafKeys [ ] schema.schema);
in
concatStringsSep "\n" (
  [
    "<!-- GENERATED by nixos/gen-options-doc.sh from nixos/options.nix and shared/schema/config.schema.json. Do not edit; CI fails when this file is stale. -->"
    "# NixOS options: `services.pullnix`"
    ""
    "The module (`nixosModules.default` of the flake, or `nixos/module.nix`) runs"
    "`pullnix-executor.service` and `pullnix-watcher.service`. `services.pullnix.settings` is the"
    "configuration file, `/etc/pullnix/config.json` (RFC 42): a freeform submodule of"
    "`(pkgs.formats.json { }).type` whose typed options are listed below as"
    "`services.pullnix.settings.<key>`. Types and defaults come from the configuration file's JSON"
    "Schema (`shared/schema/config.schema.json`); the file is validated against it when the system"
    "is evaluated, so a wrong value is an evaluation error that names the key. A key defined twice"
    "with two different values is a conflict the module system reports."
    ""
    "The options that were `services.pullnix.<key>` (`repository`, `build`, `poll`, `activation`,"
    "`activationTimeoutSec`, `verify`, `checks`, `hooks`, `metrics`, `operators`, `trust`, `gates`,"
    "`logLevel`) are `services.pullnix.settings.<key>` now; the old names still work, with a warning."
    ""
    "Keys of the configuration file without an option of their own, settable as freeform keys of"
    "`services.pullnix.settings` unless fixed by the module:"
    (concatStringsSep ", " (map code uncovered))
    "(`socketPath`, `privateSocketPath`, `stateDir`, `watcher.*`, `units.*` and `paths.*` are fixed by the module)."
    ""
  ]
)
+ "\n"
+ concatStringsSep "\n\n" (map render decls)
+ "\n"
