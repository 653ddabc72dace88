"""Attribution maps: which input values (or which places in a conv layer) the target's score rests on.

One module per method, each a `Method` (base.py) with the same call signature, built on Captum;
`registry.py` maps method names to them; `explain.py` runs one request on a private replica of the
model (replica.py), so that the hooks Captum registers never touch a module other requests share.
"""
