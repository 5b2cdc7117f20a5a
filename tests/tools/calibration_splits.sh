#!/bin/sh
# The split files the shipped models' calibration and late fusion were fitted and measured with
# (docs/results.md, "Calibration" and "Fusion"), made from the shipped split files:
#   OUT/audio-calib.split  avemo-audio.split with its unseen actors 05 07 as validation (fit) and
#                          11 13 as test (measure)
#   OUT/face.split         avemo-face.ini's own split of FER2013: 10% of train/ validates (the
#                          images the face model did not train on), validation/ is the test
#   OUT/av-calib.split     avemo-av.split with RAVDESS actors 05 07 as validation and 11 13 as test,
#                          its validation actors moved to train (the audio model heard them), and
#                          as validation faces only those neither the face model nor the av head
#                          trained on (in both validation parts)
#   OUT/rev/*.split        the same with the two halves of the unseen actors swapped
# usage: tests/tools/calibration_splits.sh AVEMO SHARED_DATA OUT
set -eu
avemo=$1 data=$2 out=$3
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out/rev"
sed -e 's#^test \(.*Actor_0[57]/\)#validation \1#' "$src/models/avemo-audio.split" > "$out/audio-calib.split"
"$avemo" split "$src/pipelines/avemo-face.ini" --data "$data/fer2013" --out "$out/face.split" >/dev/null
awk '$1 == "validation" { sub(/.*\/fer2013\//, "", $2); print $2 }' "$out/face.split" | sort > "$out/face-val.txt"
awk -v keep="$out/face-val.txt" '
  BEGIN { while ((getline f < keep) > 0) val[f] = 1 }
  /^#/ { print; next }
  $2 ~ /\/ravdess\// {
    if ($1 == "test" && $2 ~ /Actor_0[57]\//) $1 = "validation"
    else if ($1 == "validation") $1 = "train"
    print; next
  }
  { rel = $2; sub(/.*\/fer2013\//, "", rel); if ($1 == "validation" && !(rel in val)) $1 = "train"; print }
' "$src/models/avemo-av.split" > "$out/av-calib.split"
for f in audio-calib av-calib; do
  sed -e 's#^validation \(.*Actor_0[57]/\)#TMP \1#' -e 's#^test \(.*Actor_1[13]/\)#validation \1#' -e 's#^TMP #test #' \
    "$out/$f.split" > "$out/rev/$f.split"
done
rm -f "$out/face-val.txt"
