"""ICH: a reproducible pipeline to detect and segment intracranial hemorrhage on head CT."""

from ich.reproducible import pin_environment

# before anything imports PyTorch or NumPy: the same bits on every x86-64 CPU (ich.reproducible)
pin_environment()

__version__ = "0.1.0"
