"""Where OpenCV's eye cascade (haarcascade_eye.xml, opencv-data) finds the two eyes in a face
crop: FER2013 train/ (2,000 random faces), CK+ (all 690) and actor 1001's video crops cut at
256 px as in crop_sharpness.py (/tmp/crops/<clip>/face_*.jpg).  Each face is scaled to 192 px
first (the cascade's 20 px window needs it on a 48 px face); the two largest detections in the
upper 60% that lie at least 0.2 of the side apart are the eyes.  Printed in units of the side:
the point between the eyes, their distance and the roll of the line through them, as median
[quartiles]; docs/results.md, "Session 27".  Run with /usr/bin/python3 from the repository root."""
import cv2, numpy as np, glob, random

CASCADE = cv2.CascadeClassifier('/usr/share/opencv4/haarcascades/haarcascade_eye.xml')
SIDE = 192


def eye_centres(gray):
    """(x_left, y_left, x_right, y_right) / side, or None when two eyes are not found."""
    interp = cv2.INTER_CUBIC if gray.shape[0] < SIDE else cv2.INTER_AREA
    big = cv2.resize(gray, (SIDE, SIDE), interpolation=interp)
    boxes = CASCADE.detectMultiScale(big, 1.1, 3, minSize=(20, 20))
    found = [(x + w / 2, y + h / 2, w) for x, y, w, h in boxes if y + h / 2 < SIDE * 0.6]
    if len(found) < 2:
        return None
    two = sorted(sorted(found, key=lambda e: -e[2])[:2])
    (x1, y1, _), (x2, y2, _) = two
    if x2 - x1 < SIDE * 0.2:
        return None
    return np.array([x1, y1, x2, y2]) / SIDE


def report(name, files):
    found = [e for e in (eye_centres(cv2.imread(f, 0)) for f in files) if e is not None]
    a = np.array(found)
    mid_x, mid_y = (a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2
    dist = np.hypot(a[:, 2] - a[:, 0], a[:, 3] - a[:, 1])
    roll = np.abs(np.degrees(np.arctan2(a[:, 3] - a[:, 1], a[:, 2] - a[:, 0])))
    q = lambda v, f='%.3f': (f + ' [' + f + ' ' + f + ']') % (np.median(v), np.percentile(v, 25), np.percentile(v, 75))
    print('%-24s eyes found %4d/%4d  mid x %s  mid y %s  distance %s  |roll| %s deg' %
          (name, len(found), len(files), q(mid_x), q(mid_y), q(dist), q(roll, '%.1f')))


random.seed(1)
report('FER2013 train/ (2,000)', random.sample(sorted(glob.glob('../shared/data/fer2013/train/*/*')), 2000))
report('CK+ (690)', sorted(glob.glob('../shared/data/ckplus/*/*')))
report('CREMA-D 1001 crops (48)', sorted(glob.glob('/tmp/crops/*/face_*.jpg')))
