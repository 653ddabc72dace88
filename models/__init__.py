"""The built-in models (installed as convscope.models): definitions, weights, model cards, samples. Their
training tools are in models/training/, which stays in the repository."""
