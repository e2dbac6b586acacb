#!/usr/bin/env bash
# Installs what sing-ray needs on a fresh Debian machine: system packages
# (FluidSynth and a General MIDI SoundFont, libsndfile), a virtual environment
# in .venv, and the package with its dev extra (the test tools, import-linter
# among them), torch pinned by constraints.txt.
# Idempotent: a second run checks and returns in a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(fluidsynth libfluidsynth3 fluid-soundfont-gm libsndfile1)
# Headless Chromium and its driver: the browser test of the Serve page. Optional: where they
# cannot be installed, setup says so and that test skips, naming the reason.
APT_OPTIONAL=(chromium chromium-driver)

# apt_install WHAT PACKAGE...: install the packages not installed yet; returns apt's status.
apt_install() {
  local what=$1 missing=() pkg
  shift
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing Debian packages${what:+ $what}: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
apt_install "" "${APT_PACKAGES[@]}"
apt_install "for the browser test" "${APT_OPTIONAL[@]}" \
  || echo "setup: could not install ${APT_OPTIONAL[*]}; the Serve page's browser test will skip" >&2

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.sing-ray-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # pip's and setuptools' own chatter (build warnings, notices) goes to a log, shown on failure.
  log=.venv/setup.log
  echo "setup: installing sing-ray and its dependencies into .venv (a few minutes the first time; log: $log)"
  .venv/bin/pip install -q --upgrade pip >"$log" 2>&1 || true      # an older pip still installs
  .venv/bin/pip install -q -c constraints.txt -e '.[dev]' >>"$log" 2>&1 \
    || { tail -n 40 "$log" >&2; echo "setup: pip failed; the whole log is $log" >&2; exit 1; }
  .venv/bin/python -c "import torch, ray, mlflow, soundfile, pyarrow, fluidsynth, selenium, pysfizz, PIL, importlinter" \
    || { tail -n 40 "$log" >&2; echo "setup: the install did not complete; log: $log" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
