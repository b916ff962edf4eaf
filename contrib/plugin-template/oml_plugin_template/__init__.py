"""An OML plugin template: the names users import from your package.

Example:
    >>> import torch
    >>> from oml_plugin_template import CentroidLoss, TemplateCNN
    >>> model, criterion = TemplateCNN(feat_dim=8), CentroidLoss()
    >>> criterion(model(torch.rand(4, 3, 32, 32)), torch.tensor([0, 0, 1, 1])).ndim
    0
"""

from oml_plugin_template.extractor import TemplateCNN, TemplateCNNConfig
from oml_plugin_template.loss import CentroidLoss, CentroidLossConfig

__version__ = "0.1.0"

__all__ = ["CentroidLoss", "CentroidLossConfig", "TemplateCNN", "TemplateCNNConfig"]
