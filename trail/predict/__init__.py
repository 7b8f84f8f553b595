"""Length prediction: bins, Bayesian refinement, the probe MLP and the prompt predictor."""

from trail.predict.bins import LengthBins
from trail.predict.refine import BayesRefiner

__all__ = ["BayesRefiner", "LengthBins"]
