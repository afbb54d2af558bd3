# Reading and writing nested attributes by a path of names, plain builtins (no nixpkgs lib):
# used by check.nix to build the CI's sample config files from options.nix.
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
