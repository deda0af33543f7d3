"""Token attributions: one interface (:class:`~t3vis.attribution.base.AttributionMethod`), one method per module.

``METHODS`` is the registry the app reads to build its menu.
"""

from t3vis.attribution.base import Attribution, AttributionMethod, ExampleInputs, prepare
from t3vis.attribution.input_x_gradient import InputXGradient
from t3vis.attribution.integrated_gradients import IntegratedGradients
from t3vis.attribution.lrp import ConservativeLRP

METHODS: dict[str, AttributionMethod] = {
    method.name: method for method in (ConservativeLRP(), InputXGradient(), IntegratedGradients())
}

__all__ = ["METHODS", "Attribution", "AttributionMethod", "ExampleInputs", "prepare"]
