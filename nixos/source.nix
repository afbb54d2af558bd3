# The files the pullnix package is built from, as a lib.fileset (an allow-list: nothing else of
# the repository, no dist/, no node_modules/, no tests). Used by package.nix and by the VM test,
# which copies the same files into the machine so that the machine's own evaluation of its
# configuration yields the very package it already runs.
{ lib }:
lib.fileset.unions [
  ../package.json
  ../package-lock.json
  ../tsconfig.json
  ../tsconfig.base.json
  ../shared/package.json
  ../shared/tsconfig.json
  ../shared/src
  ../shared/schema
  ../executor/package.json
  ../executor/tsconfig.json
  ../executor/src
  ../watcher/package.json
  ../watcher/tsconfig.json
  ../watcher/src
  # The `test` workspace is listed in package.json, so npm ci needs its manifest; its sources
  # are not part of the package.
  ../test/package.json
]
