"""Send SMS through Exotel from Django and know what became of every message."""

__version__ = "0.1.0"
