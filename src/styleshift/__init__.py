"""styleshift: neural style transfer on VGG-19."""
