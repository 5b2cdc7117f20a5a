#!/usr/bin/python3
"""Time OpenCV's Haar face detection on one gray image, single-threaded (for avemo-bench).

usage: opencv_haar_bench.py CASCADE IMAGE REPEATS
Prints the median seconds (wall clock, and thread CPU time) of
CascadeClassifier.detectMultiScale(gray, 1.1, 5, minSize=(30, 30)) and the number of faces, as JSON.  Run with Debian's /usr/bin/python3 (python3-opencv)."""
import json
import statistics
import sys
import time

import cv2


def main():
    cascade_path, image_path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cv2.setNumThreads(1)
    cascade = cv2.CascadeClassifier(cascade_path)
    gray = cv2.imread(image_path, cv2.IMREAD_GRAYSCALE)
    if cascade.empty() or gray is None:
        sys.exit("cannot load the cascade or the image")
    faces = cascade.detectMultiScale(gray, 1.1, 5, minSize=(30, 30))  # warm-up
    times, cpu = [], []
    for _ in range(max(repeats, 1)):
        t0, c0 = time.perf_counter(), time.thread_time()
        cascade.detectMultiScale(gray, 1.1, 5, minSize=(30, 30))
        cpu.append(time.thread_time() - c0)
        times.append(time.perf_counter() - t0)
    json.dump({"median_s": statistics.median(times), "median_cpu_s": statistics.median(cpu), "faces": len(faces)},
              sys.stdout)


if __name__ == "__main__":
    main()
