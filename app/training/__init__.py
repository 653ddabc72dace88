"""The training lab: train a small CNN live on shipped data, watch it learn, serve the result.

datasets.py  the shipped subsets (or the full Fashion-MNIST), as uint8 tensors normalised per batch
nets.py      architectures, losses and optimizers to choose from, and their defaults
schemas.py   the lab's request and response bodies (pydantic)
plan.py      settings checked against the data and the limits → what a run will do
trainer.py   the training loop of one run: seeded, cancellable, reporting as it goes
events.py    a run's event log, followed live by any number of streams
export.py    a finished run as a model the registry serves
runs.py      the run manager: bounded slots and queue, one thread per run
"""
