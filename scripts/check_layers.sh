#!/usr/bin/env bash
# Checks that every project include follows the layering of docs/design.md ("Layers and
# flow"): a file includes only its own layer or lower ones.
#
#   0 public     include/dep2p/connmgr/        only public headers
#   1 foundation src/base, src/net            public, foundation
#   2 units      src/pool, src/tags, src/timers, src/admission, src/gater, src/paths,
#                src/trim, src/dial           public, foundation, units
#   3 managers   src/manager, src/observe, src/realm
#   - examples   examples/                    public headers and the examples' own files
#
# Two rules inside the managers: the core (src/manager) knows nothing of realms, and the
# realm layer reaches the core only through manager/extension.hpp.
#
#   scripts/check_layers.sh [ROOT]   (ROOT: the repository; default: this script's parent)
# Prints each violation as FILE:LINE: message and exits 1 if there is any.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

layer_of_folder() {
  case $1 in
    dep2p) echo 0 ;;
    base | net) echo 1 ;;
    pool | tags | timers | admission | gater | paths | trim | dial) echo 2 ;;
    manager | observe | realm) echo 3 ;;
    *) echo "" ;;
  esac
}

violations=0
report() {
  echo "$1: $2"
  violations=$((violations + 1))
}

# Every quoted include, as FILE:LINE:TARGET.
quoted_includes() {
  grep -rnE --include='*.hpp' --include='*.cpp' '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$@" |
    sed -E 's/^([^:]+:[0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1:\2/'
}

# Public headers: only public headers.
if [ -d include ]; then
  while IFS= read -r hit; do
    where=${hit%:*}
    target=${hit##*:}
    case $target in
      dep2p/connmgr/*) ;;
      *) report "$where" "public header includes \"$target\", which is not a public header" ;;
    esac
  done < <(quoted_includes include)
  # Angle-bracket includes of the library's own sources would slip past the check above.
  while IFS= read -r hit; do
    report "${hit%%:#*}" "public header includes a source-tree header"
  done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<(base|net|pool|tags|timers|admission|gater|paths|trim|dial|manager|observe|realm)/' include || true)
fi

# Sources.
for dir in src/*/; do
  folder=$(basename "$dir")
  own=$(layer_of_folder "$folder")
  if [ -z "$own" ]; then
    report "$dir" "folder '$folder' has no layer: add it to docs/design.md and this script"
    continue
  fi
  while IFS= read -r hit; do
    where=${hit%:*}
    target=${hit##*:}
    target_folder=${target%%/*}
    if [ "$target_folder" = "$target" ]; then
      report "$where" "includes \"$target\" without its folder"
      continue
    fi
    layer=$(layer_of_folder "$target_folder")
    if [ -z "$layer" ]; then
      report "$where" "includes \"$target\" from a folder with no layer"
    elif [ "$layer" -gt "$own" ]; then
      report "$where" "layer $own ($folder) includes \"$target\" from layer $layer"
    elif [ "$folder" = manager ] && [ "$target_folder" = realm ]; then
      report "$where" "the core includes \"$target\": it knows realms only as its extension"
    elif [ "$folder" = realm ] && [ "$target_folder" = manager ] &&
      [ "$target" != manager/extension.hpp ]; then
      report "$where" "the realm layer includes \"$target\": its door to the core is manager/extension.hpp"
    fi
  done < <(quoted_includes "$dir")
done

# Examples: public headers and the examples' own files, nothing from src/.
if [ -d examples ]; then
  while IFS= read -r hit; do
    where=${hit%:*}
    target=${hit##*:}
    file=${where%%:*}
    case $target in
      dep2p/connmgr/*) ;;
      *)
        # Its own folder's, or another example's (examples build on each other).
        if [ ! -f "$(dirname "$file")/$target" ] && ! compgen -G "examples/*/$target" >/dev/null; then
          report "$where" "example includes \"$target\", neither public nor an example's"
        fi
        ;;
    esac
  done < <(quoted_includes examples)
fi

if [ "$violations" -ne 0 ]; then
  echo "check_layers: $violations violation(s)" >&2
  exit 1
fi
echo "check_layers: every include follows the layers"
