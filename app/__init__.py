"""ConvScope: a web-based visualizer for convolutional neural networks."""

from importlib.metadata import version

__version__ = version("convscope")
