"""ConvScope: a web-based visualizer for convolutional neural networks."""
