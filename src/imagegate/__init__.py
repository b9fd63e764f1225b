"""imagegate: one API in front of every image-generation model."""

__version__ = "0.1.0"
