#!/usr/bin/env bash
# Builds ONE npm tarball for air-gapped hosts: dist/src, spec/, bundles/ and
# every runtime dependency bundled (bundleDependencies), with the native
# addons (node-pty, zstd-napi) already compiled, so that
#   npm install -g --offline ./s2n-oci-<version>-<os>-<arch>.tgz
# needs no registry, no compiler and no Node headers.
#
# Why a staging copy instead of plain `npm pack` with bundleDependencies:
# npm packs a bundled dependency by that dependency's own `files` list, which
# for both addons leaves out build/Release (the compiled .node), and npm runs
# a bundled dependency's install script on the target (node-pty's and
# zstd-napi's fall back to `node-gyp rebuild`, which needs headers and a
# compiler). In the staged copy the two addons keep their compiled binary,
# lose their install scripts, sources and build-only dependencies; the
# repository's own node_modules are never modified.
#
# Both addons use only Node-API (no V8/libuv symbols), so the binaries work on
# any Node >= 20; they are linked against this host's glibc and libstdc++,
# hence the tarball is for <os>-<arch> with glibc only (recorded as os/cpu/libc
# in the staged package.json, so npm refuses it elsewhere with EBADPLATFORM).
#
# Usage: scripts/pack-offline.sh [--out DIR] [--no-build]
#   --out DIR    where to write the tarball (default: the repository root)
#   --no-build   reuse the existing dist/ instead of running `npm run build`
# Prints the tarball's absolute path as the last line of stdout.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
out=$repo
build=1
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "pack-offline: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

die() { echo "pack-offline: $1" >&2; [ $# -lt 2 ] || echo "hint: $2" >&2; exit 1; }
log() { echo "pack-offline: $*" >&2; }

cd "$repo"
[ -d node_modules ] || die "no node_modules in $repo" "run: npm ci"
# Everything that talks to npm below works on local files only; --offline makes
# an accidental registry lookup fail at once instead of hanging.
npm_q() { npm --offline --no-audit --no-fund --loglevel=error "$@"; }

if [ "$build" = 1 ]; then
  log "building (npm run build)"
  npm_q run build >&2
fi
[ -f dist/src/cli/bundle.cjs ] || die "dist/src/cli/bundle.cjs is missing" "run: npm run build (or drop --no-build)"

# The compiled addons must exist and load here: they are what we ship.
native=(node-pty/build/Release/pty.node zstd-napi/build/Release/binding.node)
for f in "${native[@]}"; do
  [ -f "node_modules/$f" ] || die "node_modules/$f is missing: the native addon was not built" \
    "install a compiler and Node headers, then run: npm rebuild node-pty zstd-napi"
  node -e 'require(process.argv[1])' "$repo/node_modules/$f" ||
    die "node_modules/$f does not load with $(node --version)" "run: npm rebuild node-pty zstd-napi"
done

# The newest glibc symbol version the binaries use is the oldest glibc they run on.
glibc=
if command -v objdump >/dev/null; then
  glibc=$(for f in "${native[@]}"; do objdump -T "node_modules/$f"; done | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1)
  glibc=${glibc#GLIBC_}
fi
export S2N_PACK_GLIBC=${glibc:-unknown}

stage=$(mktemp -d "${TMPDIR:-/tmp}/s2n-pack-offline.XXXXXX")
trap 'rm -rf "$stage"' EXIT
pkg=$stage/package
mkdir -p "$pkg/node_modules"

# 1. The package's own files, exactly as `npm pack` selects them (package.json `files`).
own=$(npm_q pack --dry-run --json --ignore-scripts |
  node -e 'for (const f of JSON.parse(require("fs").readFileSync(0, "utf8"))[0].files) console.log(f.path)') ||
  die "npm pack --dry-run could not list the package's files"
while IFS= read -r f; do
  mkdir -p "$pkg/$(dirname "$f")"
  cp -p "$f" "$pkg/$f"
done <<<"$own"

# 2. The production dependency tree as installed here (nested node_modules kept
#    where npm put them); dev dependencies are not in this list.
deps=$(npm_q ls --omit=dev --all --parseable) ||
  die "npm ls reports missing or invalid dependencies in $repo/node_modules" "run: npm ci"
while IFS= read -r abs; do
  [ "$abs" != "$repo" ] || continue
  rel=${abs#"$repo"/}
  case $rel in node_modules/*) ;; *) die "unexpected dependency path: $abs" ;; esac
  mkdir -p "$pkg/$rel"
  find "$abs" -mindepth 1 -maxdepth 1 ! -name node_modules -exec cp -pR {} "$pkg/$rel/" \;
done <<<"$deps"

# 3. Manifests: the root declares its bundle and platform; the two addons become
#    prebuilt-only packages. npm packs only what the patched manifests reach, so
#    the dropped build-only dependencies (prebuild-install and its tree,
#    node-addon-api, @types/node) stay out of the tarball.
node --input-type=module - "$pkg" <<'EOF'
import { readFileSync, writeFileSync, rmSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
const pkg = process.argv[2];
const edit = (dir, fn) => {
  const p = join(pkg, dir, 'package.json');
  const j = JSON.parse(readFileSync(p, 'utf8'));
  fn(j);
  writeFileSync(p, JSON.stringify(j, null, 2) + '\n');
};
const platform = `${process.platform}-${process.arch}`;
const note = `prebuilt for ${platform} (glibc >= ${process.env.S2N_PACK_GLIBC}) with Node ${process.version} by s2n-oci scripts/pack-offline.sh: install scripts, sources and build-only dependencies removed`;

edit('.', (j) => {
  j.bundleDependencies = Object.keys(j.dependencies ?? {});
  j.os = [process.platform];
  j.cpu = [process.arch];
  j.libc = ['glibc'];
  // Lifecycle and dev scripts belong to the source tree, not to an installed package.
  delete j.scripts;
  delete j.devDependencies;
  delete j.allowScripts;
});

const prebuilt = { 'node-pty': ['lib/', 'typings/', 'build/Release/pty.node'],
  'zstd-napi': ['NOTICE', 'binding.d.ts', 'binding.js', 'dist/', 'build/Release/binding.node'] };
const buildOnly = ['node-addon-api', 'prebuild-install', '@types/node'];
for (const [name, files] of Object.entries(prebuilt)) {
  edit(`node_modules/${name}`, (j) => {
    for (const s of ['preinstall', 'install', 'postinstall', 'prepare']) delete j.scripts?.[s];
    j.gypfile = false; // else npm invents `node-gyp rebuild` for a package with binding.gyp
    j.files = files;
    for (const d of buildOnly) delete j.dependencies?.[d];
    j.s2nOciOffline = note;
  });
  // Without binding.gyp nothing (npm rebuild, older npm) can try to compile it.
  rmSync(join(pkg, 'node_modules', name, 'binding.gyp'), { force: true });
}
// node-pty ships its tests and source maps in lib/.
const prune = (d) => {
  for (const e of readdirSync(d)) {
    const p = join(d, e);
    if (statSync(p).isDirectory()) prune(p);
    else if (/\.test\.js(\.map)?$|\.js\.map$/.test(e)) rmSync(p);
  }
};
prune(join(pkg, 'node_modules/node-pty/lib'));
// bare-* (dependencies of tar-stream, used only under the Bare runtime; Node
// takes its own fs) carry prebuilt `.bare` addons for a dozen platforms that
// Node never loads: about 6 MB unpacked.
for (const e of readdirSync(join(pkg, 'node_modules'))) {
  if (e.startsWith('bare-')) rmSync(join(pkg, 'node_modules', e, 'prebuilds'), { recursive: true, force: true });
}
EOF

# 4. Pack the staged copy (no lifecycle scripts: dist/ is already built).
version=$(node -p 'require(process.argv[1]).version' "$pkg/package.json")
name=s2n-oci-$version-$(node -p 'process.platform + "-" + process.arch').tgz
(cd "$pkg" && npm_q pack --ignore-scripts --pack-destination "$stage" >/dev/null)
packed=$stage/s2n-oci-$version.tgz
[ -f "$packed" ] || die "npm pack did not write $packed"

# 5. Check the result before handing it out: both binaries in, no dev tooling.
listing=$(tar -tzf "$packed")
for f in "${native[@]}"; do
  grep -qx "package/node_modules/$f" <<<"$listing" || die "the tarball lacks node_modules/$f"
done
for bad in typescript vitest node-gyp; do
  if grep -q "^package/node_modules/$bad/" <<<"$listing"; then die "the tarball bundles the dev tool $bad"; fi
done
mv -f "$packed" "$out/$name"
log "wrote $out/$name ($(du -h "$out/$name" | cut -f1), $(wc -l <<<"$listing") files) for $(node -p 'process.platform + "-" + process.arch') with glibc >= $S2N_PACK_GLIBC, Node >= 20"
log "install on the target: npm install -g --offline ./$name"
echo "$out/$name"
