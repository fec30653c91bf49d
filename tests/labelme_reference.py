"""Reference: LabelMe's own rasterisation, ``labelme.utils.shape_to_mask`` (labelme 5.x,
wkentaro/labelme, MIT licence), ported faithfully for the fillable shape types so that segpc's
importer can be tested against it without installing labelme (which pulls in Qt)."""
import math

import numpy as np
import PIL.Image
import PIL.ImageDraw


def shape_to_mask(img_shape, points, shape_type=None):
    mask = np.zeros(img_shape[:2], dtype=np.uint8)
    mask = PIL.Image.fromarray(mask)
    draw = PIL.ImageDraw.Draw(mask)
    xy = [tuple(point) for point in points]
    if shape_type == "circle":
        assert len(xy) == 2, "Shape of shape_type=circle must have 2 points"
        (cx, cy), (px, py) = xy
        d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif shape_type == "rectangle":
        assert len(xy) == 2, "Shape of shape_type=rectangle must have 2 points"
        draw.rectangle(xy, outline=1, fill=1)
    else:
        assert len(xy) > 2, "Polygon must have points more than 2"
        draw.polygon(xy=xy, outline=1, fill=1)
    return np.array(mask, dtype=bool)
