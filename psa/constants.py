"""Single source of truth for the constants of the PSA method and the VOC format."""

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)

IGNORE_INDEX = 255  # "void" in VOC masks and "uncertain" in confident labels
MAX_INSTANCES = 254  # instance ids of a uint8 map besides 0 (background) and 255 (void)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FEATURE_STRIDE = 8  # every PSA network works at output stride 8

# torchvision RandAugment's ops that leave the geometry alone: the FixMatch strong views' space
PHOTOMETRIC_OPS = ("Identity", "Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize",
                   "AutoContrast", "Equalize")


def voc_palette() -> list[int]:
    """The standard VOC colour map as a flat 768-entry PIL palette (bit-interleaved)."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette
