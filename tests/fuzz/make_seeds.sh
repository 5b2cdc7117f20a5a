#!/usr/bin/env bash
# Regenerate the seed corpora of tests/fuzz/corpus/<harness>/ (small files, a few KB):
#   tests/fuzz/make_seeds.sh BUILD_DIR
# BUILD_DIR is any built tree (its libavemo.a writes the model seeds).  Needs the ffmpeg
# CLI, Debian's /usr/bin/python3 and the cascades of opencv-data.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: make_seeds.sh BUILD_DIR}" && pwd)
corpus=$here/corpus
mkdir -p "$corpus"/{media,model,cascade,pipeline,jpeg,multipart}
ff() { ffmpeg -v error -y "$@"; }

# media: tiny clips of the kinds the server takes, plus a real clip's head.
m=$corpus/media
ff -f lavfi -i testsrc=s=32x24:r=5:d=0.4 -f lavfi -i sine=f=440:r=8000:d=0.4 -c:v flv1 -c:a adpcm_swf -ar 11025 "$m/tiny.flv"
ff -f lavfi -i testsrc=s=32x24:r=5:d=0.4 -f lavfi -i sine=f=300:r=8000:d=0.4 -c:v mpeg4 -c:a aac -b:a 16k -ac 1 "$m/tiny.mp4"
ff -f lavfi -i sine=f=440:r=8000:d=0.25 -c:a pcm_s16le "$m/tone.wav"
ff -f lavfi -i sine=f=440:r=8000:d=0.3 -c:a libmp3lame -b:a 8k "$m/tone.mp3" 2>/dev/null ||
  ff -f lavfi -i sine=f=440:r=8000:d=0.3 -c:a mp2 -b:a 32k "$m/tone.mp2"
ff -f lavfi -i testsrc=s=32x24:r=5:d=0.4 -c:v mjpeg -an "$m/tiny.avi"
cp "$src/tests/data/faces/happy_PublicTest_10130075.jpg" "$m/face.jpg"
head -c 4096 "$src/tests/data/cremad/1001_DFA_ANG_XX.flv" > "$m/cremad_head.flv"

# jpeg: two FER faces (gray) and an RGB frame.
mkdir -p "$corpus/jpeg"
cp "$src"/tests/data/faces/angry_PublicTest_10116449.jpg "$src"/tests/data/faces/sad_PublicTest_11285899.jpg "$corpus/jpeg/"
ff -f lavfi -i testsrc=s=40x30 -frames:v 1 "$corpus/jpeg/rgb_testsrc.jpg"

# pipeline: the shipped recipes.
cp "$src"/pipelines/audio-mfcc.ini "$src"/pipelines/avemo-av.ini "$src"/pipelines/avemo-face.ini \
   "$src"/pipelines/avemo-audio-deep.ini "$corpus/pipeline/"

# cascade: the first stage(s) of OpenCV's Haar and LBP cascades, features trimmed to those used.
/usr/bin/python3 - "$corpus/cascade" <<'PY'
import sys, xml.etree.ElementTree as ET
out = sys.argv[1]
def trim(src, dst, stages, trees):
    root = ET.parse(src).getroot()
    c = root.find('cascade')
    st = c.find('stages')
    for s in list(st)[stages:]:
        st.remove(s)
    used = 0
    for s in st:
        wc = s.find('weakClassifiers')
        for t in list(wc)[trees:]:
            wc.remove(t)
        s.find('maxWeakCount').text = str(len(wc))
        for t in wc:
            nodes = t.find('internalNodes').text.split()
            for i in range(0, len(nodes), 4):
                used = max(used, int(nodes[i + 2]) + 1)
    c.find('stageNum').text = str(len(st))
    fs = c.find('features')
    for f in list(fs)[used:]:
        fs.remove(f)
    ET.ElementTree(root).write(f'{out}/{dst}', xml_declaration=True, encoding='utf-8')
trim('/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml', 'haar_2stages.xml', 2, 6)
trim('/usr/share/opencv4/lbpcascades/lbpcascade_frontalface.xml', 'lbp_2stages.xml', 2, 4)
trim('/usr/share/opencv4/haarcascades/haarcascade_eye_tree_eyeglasses.xml', 'haar_tree.xml', 1, 3)
PY

# model: small networks saved by avemo_net_save; the harness reads byte 0 as its mode
# (0: load as is), so each seed is a 0 byte followed by the file.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/seed.c" <<'C'
#include <avemo/nn.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    struct avemo_error err = {0};
    for (int i = 1; i + 1 < argc; i += 2) {
        avemo_net *net = NULL;
        if (avemo_net_create(argv[i], "seed", &net, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
        avemo_net_init(net, AVEMO_NN_INIT_DEFAULT, 1);
        /* a training record (model file version 2) in the files named *record* */
        struct avemo_record_entry rec[2] = {{0, {1, 2, 3}, "corpus/a/1.wav"}, {1, {4, 5, 6}, "corpus/b/2.jpg"}};
        if (strstr(argv[i + 1], "record") && avemo_net_set_record(net, rec, 2, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
        if (avemo_net_save(net, argv[i + 1], &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
        avemo_net_free(net);
    }
    return 0;
}
C
libs=$(pkg-config --libs libavformat libavcodec libavutil libswresample libswscale fftw3f openblas libjpeg \
       libcjson inih libxml-2.0 cairo sqlite3 libmicrohttpd)
cflags=""
if grep -q 'AVEMO_SANITIZE:BOOL=ON' "$build/CMakeCache.txt"; then cflags="-fsanitize=address,undefined"; fi
cc $cflags -I"$src/include" "$tmp/seed.c" "$build/libavemo.a" $libs -lpthread -lm -o "$tmp/seed"
dense=$'[network]\ninputs = x:1x1x8\nlabels = A, B\n[branch.x]\nlayers = dense 4, relu\n[head]\nlayers = dense 2, softmax\n'
conv=$'[network]\ninputs = a:1x6x6, b:1x4x4\n[branch.a]\nlayers = conv 2 3 same, bn, relu, maxpool 2, gap\n[branch.b]\nlayers = conv 2 3 valid, relu, gap, dropout 0.5\n[head]\nlayers = dense 3, bn, relu, dense 2, softmax\n'
ASAN_OPTIONS=detect_leaks=0 "$tmp/seed" "$dense" "$tmp/dense.avm" "$conv" "$tmp/conv.avm" "$dense" "$tmp/record.avm"
for name in dense conv record; do
  { printf '\0'; cat "$tmp/$name.avm"; } > "$corpus/model/$name.avm"
done
# multipart: requests to POST /v1/predict (first byte: 0 body, 1 content type + body,
# 2 whole request; see fuzz_multipart.c) carrying the tone WAV.
mp=$corpus/multipart
wav=$corpus/media/tone.wav
part() { printf -- '--avemoFuzz\r\nContent-Disposition: form-data; name="file"; filename="tone.wav"\r\nContent-Type: audio/wav\r\n\r\n'; cat "$wav"; printf -- '\r\n--avemoFuzz--\r\n'; }
{ printf '\0'; part; } > "$mp/body.bin"
{ printf '\1multipart/form-data; boundary=avemoFuzz\n'; part; } > "$mp/type.bin"
{ printf '\1audio/wav\n'; cat "$wav"; } > "$mp/raw_wav.bin"
{ printf '\2POST /v1/predict?mode=audio HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: audio/wav\r\nContent-Length: %d\r\n\r\n' "$(stat -c %s "$wav")"; cat "$wav"; } > "$mp/request.bin"
{ printf '\2GET /v1/history?limit=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'; } > "$mp/history.bin"
# eval_merge: an `avemo eval --shard` output (a head line, then units of three --data; real
# answers of a fold model of session 29, paths shortened) and an older one (no file names,
# no probabilities, no --data list).
mkdir -p "$corpus/eval_merge"
cat > "$corpus/eval_merge/folds.jsonl" <<'JSONL'
{"labels":["ANG","DIS","FEA","HAP","NEU","SAD"],"model":"f4.avm","skipped":0,"skipped_files":[],"dropped_labels":"160 CAL, 160 SUR, 45 BOR","left_out_trained":0,"kept_same_name":0,"no_training_record":"","data":[{"data":"ravdess","corpus":"ravdess"},{"data":"emodb/manifest.csv","corpus":"emodb"},{"data":"crema-d/AudioMP3","corpus":"crema-d"}]}
{"file":"ravdess/03-01-01-01-01-01-06.wav","truth":"NEU","pred":"NEU","data":0,"probs":[0.0041,0.0528,0.003,0.0449,0.8373,0.0579]}
{"file":"ravdess/03-01-01-01-01-02-06.wav","truth":"NEU","pred":"HAP","data":0,"probs":[0.0201,0.0641,0.0188,0.7045,0.1519,0.0405]}
{"file":"emodb/10a01Ac.wav","truth":"FEA","pred":"FEA","data":1,"probs":[0.0063,0.0006,0.9702,0.0108,0.0002,0.0119]}
{"file":"emodb/10a01Nb.wav","truth":"NEU","pred":"SAD","data":1,"probs":[0.0001,0.0013,0.0067,0.0015,0.1046,0.8859]}
{"file":"crema-d/1002_DFA_ANG_XX.mp3","truth":"ANG","pred":"HAP","data":2,"probs":[0.1231,0.0259,0.001,0.8469,0.0026,0.0005]}
{"file":"crema-d/1002_DFA_DIS_XX.mp3","truth":"DIS","pred":"NEU","data":2,"probs":[0.0001,0.0068,0.0001,0.0009,0.9659,0.0263]}
JSONL
cat > "$corpus/eval_merge/older.jsonl" <<'JSONL'
{"labels":["ANG","DIS","FEA","HAP","NEU","SAD"],"model":"f4.avm","skipped":0,"skipped_files":[],"dropped_labels":"160 CAL, 160 SUR, 45 BOR","left_out_trained":0,"kept_same_name":0}
{"truth": "NEU", "pred": "NEU"}
{"truth": "NEU", "pred": "HAP"}
{"truth": "FEA", "pred": "FEA"}
JSONL
ls -l "$corpus"/*
