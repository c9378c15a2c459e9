"""The CAM stage (PSA's first): the classifier on image labels, the CAM export (multi-scale +
flip CAMs, CAM predictions, the confident labels AffinityNet learns from) and the CAMs'
evaluation. It provides the other methods its export and its classifier
(psa/framework/cams.py); other ways to train the classifier plug in as `cam.method` variants."""

from .section import CamConfig

ORDER = 10
SECTIONS = {"cam": CamConfig}
