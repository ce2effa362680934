"""lifestudy — a reproducible study of LIFE (Local InFormation Enhancer) for ViTs.

Akkaya et al., "Enhancing Performance of Vision Transformers on Small Datasets through
Local Inductive Bias Incorporation", arXiv 2305.08551.

Importing the package registers the study's models in timm's registry, so
``timm.create_model("deit_tiny_patch16_224_life", num_classes=100)`` works.
"""

from lifestudy.life import LIFE, apply_life
from lifestudy import models  # noqa: F401  (registers the timm models)

__all__ = ["LIFE", "apply_life", "__version__"]
__version__ = "0.1.0"
