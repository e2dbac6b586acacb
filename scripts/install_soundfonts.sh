#!/usr/bin/env bash
# Install Debian's free General MIDI and GS SoundFonts, for `sing-ray data soundfont --corpus --all-installed`
# (docs/soundfont.md, "A corpus from every installed SoundFont"). Idempotent: packages already
# installed are left alone, and nothing runs apt when all are there. Uses sudo when not root.
#
#   ./scripts/install_soundfonts.sh            # then: sing-ray data soundfont --corpus --all-installed --plan-only --out DIR
set -euo pipefail

SOUNDFONT_PACKAGES=(
  fluid-soundfont-gm                       # /usr/share/sounds/sf2/FluidR3_GM.sf2
  fluid-soundfont-gs                       # /usr/share/sounds/sf2/FluidR3_GS.sf2 (GS sound effects)
  musescore-general-soundfont              # /usr/share/sounds/sf3/MuseScore_General_Lite.sf3
  musescore-general-soundfont-lossless     # /usr/share/sounds/sf2/MuseScore_General_Full.sf2
  timgm6mb-soundfont                       # /usr/share/sounds/sf2/TimGM6mb.sf2
  opl3-soundfont                           # /usr/share/sounds/sf2/OPL-3_FM_128M.sf2
  csound-soundfont                         # /usr/share/sounds/sf2/sf_GMbank.sf2
  fluidr3mono-gm-soundfont                 # /usr/share/sounds/sf3/FluidR3Mono_GM.sf3
)

missing=()
for pkg in "${SOUNDFONT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_soundfonts: all ${#SOUNDFONT_PACKAGES[@]} SoundFont packages are installed"
else
  echo "install_soundfonts: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# What the corpus will find (each real file once: the links Debian's alternatives add are resolved).
for dir in /usr/share/sounds/sf2 /usr/share/sounds/sf3 /usr/share/soundfonts; do
  [ -d "$dir" ] && find -L "$dir" -maxdepth 1 -type f \( -iname '*.sf2' -o -iname '*.sf3' \) -printf '%p\n'
done | while read -r f; do printf '%s\t%s\n' "$(readlink -f "$f")" "$f"; done | sort -u -k1,1 | cut -f2 \
  | sed 's/^/install_soundfonts: found /'
