#!/usr/bin/python3
"""Reference detections: OpenCV's CascadeClassifier.detectMultiScale on gray images.

usage: opencv_detect.py CASCADE SCALE MIN_NEIGHBORS MIN_SIZE IMAGE...
Prints one JSON object {image path: [[x, y, w, h], ...]} (boxes as OpenCV returns them).
Run with Debian's /usr/bin/python3 (python3-opencv)."""
import json
import sys

import cv2


def main():
    cascade_path, scale, neighbors, min_size = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    cascade = cv2.CascadeClassifier(cascade_path)
    if cascade.empty():
        sys.exit("cannot load " + cascade_path)
    out = {}
    for path in sys.argv[5:]:
        gray = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if gray is None:
            sys.exit("cannot read " + path)
        boxes = cascade.detectMultiScale(gray, scale, neighbors, minSize=(min_size, min_size))
        out[path] = [[int(v) for v in b] for b in boxes]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
