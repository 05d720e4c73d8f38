"""Explanations: Grad-CAM maps and overlays."""

from ich.explain.gradcam import confidence_cases, gradcam_maps, overlay

__all__ = ["confidence_cases", "gradcam_maps", "overlay"]
