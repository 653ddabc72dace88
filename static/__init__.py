"""Package data: static/ here is installed as convscope.static (app/resources.py)."""
