"""ImageWorks Models plugin package."""

__version__ = "0.1.0"
