"""Feed-forward style transfer: one pass of an encoder, a feature transform and a decoder.

The decoders are trained only to invert VGG-19 (universal style transfer, Li et al.
2017), so any painting works at run time without training; the transform (AdaIN, WCT
or EFDM) moves the photo's features towards the painting's.
"""
