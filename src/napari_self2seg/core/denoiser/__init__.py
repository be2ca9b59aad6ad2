"""Noise2Fast denoising experts: network, checkerboard sampling and training."""
