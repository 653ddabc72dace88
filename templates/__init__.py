"""Package data: templates/ here is installed as convscope.templates (app/resources.py)."""
