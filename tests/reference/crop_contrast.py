"""Pixel standard deviation of 64x64 gray faces: FER2013 train/ (4,000 random) and validation/ (1,000
random), CK+, and actor 1001's crops cut as in crop_sharpness.py; docs/results.md, "Session 26".
Run with /usr/bin/python3 from the repository root."""
import cv2, numpy as np, glob, random
def pct(name, s):
    print('%-12s n %5d  median %.1f  p10 %.1f  p25 %.1f' % (name, len(s), np.median(s), np.percentile(s, 10), np.percentile(s, 25)))
random.seed(2)
pct('FER train', [cv2.imread(f, 0).astype(float).std() for f in random.sample(glob.glob('../shared/data/fer2013/train/*/*'), 4000)])
random.seed(1)
pct('FER val', [cv2.imread(f, 0).astype(float).std() for f in random.sample(glob.glob('../shared/data/fer2013/validation/*/*'), 1000)])
pct('CK+', [cv2.imread(f, 0).astype(float).std() for f in glob.glob('../shared/data/ckplus/*/*.png')])
pct('CREMA 1001', [cv2.resize(cv2.imread(f, 0), (64, 64), interpolation=cv2.INTER_AREA).astype(float).std()
                   for f in glob.glob('/tmp/crops/*/face_*.jpg')])
