"""J&F: the DAVIS 2017 / MOSEv1 semi-supervised metric, and the MOSEv2 variant."""
