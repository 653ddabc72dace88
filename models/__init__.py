"""ConvScope's built-in models: definitions, training, and the data they are trained on."""
