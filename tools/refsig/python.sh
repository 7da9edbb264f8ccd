# Sourced by run.sh and check.sh: sets `py` to a python3 with numpy — the
# one on PATH (pyenv's, on this project's machines), else Debian's
# (apt-get install python3-numpy); REFSIG_PYTHON overrides.
py="${REFSIG_PYTHON:-}"
if [ -z "$py" ]; then
    for p in python3 /usr/bin/python3; do
        if "$p" -c 'import numpy' 2>/dev/null; then py="$p"; break; fi
    done
fi
[ -n "$py" ] || { echo "tools/refsig: needs python3 with numpy (apt-get install python3-numpy)" >&2; exit 1; }
