"""ICH: a reproducible pipeline to detect and segment intracranial hemorrhage on head CT."""

__version__ = "0.1.0"
