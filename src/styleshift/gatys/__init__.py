"""Image optimisation (Gatys et al. 2016): the picture itself is optimised against a
content and a style loss on VGG-19 features, coarse to fine, in tiles where memory is short.
"""
