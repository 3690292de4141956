"""polyplib: GMSRF-Net and Polyp-SAM re-implemented for the polyp-book."""

__version__ = "0.1.0"
