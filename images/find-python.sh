#!/usr/bin/env bash
# Print the path of a working Python 3.12 (pyenv shims that can't run it are skipped).
for p in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do
    if "$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
        "$p" -c 'import sys; print(sys.executable)'
        exit 0
    fi
done
echo "coatcheck: Python 3.12 is required (python3.12 not found)" >&2
exit 1
