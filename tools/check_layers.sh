#!/usr/bin/env bash
# Checks the layering of host/src from the library's object files (the
# symbols each file defines and uses, as nm lists them):
#   - a file calls only into its own folder or the folders below it:
#       core < opencl/tuning < opencl/runtime, reference < opencl/plan
#       < opencl/ops < opencl (backend.c) < api
#   - the entry points (api/) reach the backends only through the backend
#     interface (core/internal.h: the ops tables and the constructor);
#   - no two files call each other, directly or around a cycle.
# Usage: tools/check_layers.sh OBJECT_DIR (CMakeFiles/clxent_objects.dir).
set -euo pipefail
dir=${1:?usage: check_layers.sh OBJECT_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The layer of a file, by its folder (generated sources belong to the
# layer that uses them).
rank() {
  case $1 in
    core/*) echo 0 ;;
    opencl/tuning/* | generated/tuning_db.c) echo 1 ;;
    opencl/runtime/* | generated/kernels_embedded.c) echo 2 ;;
    reference/*) echo 2 ;;
    opencl/plan/*) echo 3 ;;
    opencl/ops/*) echo 4 ;;
    opencl/*) echo 5 ;;
    api/*) echo 6 ;;
    *) echo "check_layers: $1 is in no layer" >&2; exit 1 ;;
  esac
}

count=0
while IFS= read -r obj; do
  name=${obj#"$dir"/}
  name=${name#host/src/}
  name=${name%.o}
  r=$(rank "$name")
  nm "$obj" | awk -v f="$name" -v r="$r" '
    $1 == "U" { print "U", f, r, $2 }
    NF == 3 && $2 ~ /^[TDBR]$/ { print "D", f, r, $3 }' >>"$work/symbols"
  count=$((count + 1))
done < <(find "$dir" -name '*.c.o' | sort)
[ "$count" -gt 0 ] || { echo "check_layers: no object files in $dir" >&2; exit 1; }

# Edges caller -> callee between files, with their layers.
awk '
  $1 == "D" { def[$4] = $2; drank[$4] = $3 }
  $1 == "U" { use[++n] = $2 " " $3 " " $4 }
  END {
    for (i = 1; i <= n; i++) {
      split(use[i], u, " ")
      if (!(u[3] in def) || def[u[3]] == u[1]) continue
      print u[1], u[2], def[u[3]], drank[u[3]], u[3]
    }
  }' "$work/symbols" | sort -u >"$work/edges"

bad=0
# Calls up the layers.
if awk '$4 > $2 { print "  " $1 " calls " $5 " of " $3 " (a layer above)"; f = 1 }
        END { exit !f }' "$work/edges"; then
  bad=1
fi
# The entry points take the backend interface only.
if awk '$1 ~ /^api\// && $3 !~ /^(api|core)\// &&
        $5 !~ /^(clx_host_backend|clx_opencl_backend|clx_opencl_create|clx_opencl_param_name)$/ {
          print "  " $1 " calls " $5 " of " $3 " (not the backend interface)"; f = 1 }
        END { exit !f }' "$work/edges"; then
  bad=1
fi
# Cycles between files: tsort reports them.
awk '{ print $1, $3 }' "$work/edges" | sort -u >"$work/pairs"
if ! tsort "$work/pairs" >/dev/null 2>"$work/tsort"; then
  echo "  files that call each other (tsort):"
  sed 's/^/    /' "$work/tsort"
  bad=1
fi
if [ "$bad" = 1 ]; then
  echo "check_layers: the layering of host/src is broken (above)" >&2
  exit 1
fi
echo "check_layers: $count files, $(wc -l <"$work/pairs") file-to-file calls, no call up a layer, no cycle"
