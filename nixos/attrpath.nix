# Reading and writing nested attributes by a path of names, plain builtins (no nixpkgs lib):
# shared by config.nix (option values -> config file) and check.nix (the CI samples).
{
  getIn = path: set: builtins.foldl' (a: k: a.${k}) set path;

  setIn =
    let
      setIn =
        path: value: set:
        let
          k = builtins.head path;
          rest = builtins.tail path;
        in
        set // { ${k} = if rest == [ ] then value else setIn rest value (set.${k} or { }); };
    in
    setIn;
}
