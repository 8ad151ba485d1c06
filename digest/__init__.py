"""digest: turn a folder of articles into a weekly newsletter and deliver it."""

__version__ = "0.1.0"
