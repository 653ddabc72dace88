"""Package data: data/ here is installed as convscope.data (app/resources.py)."""
