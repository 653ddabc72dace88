"""The inspection engine: layer graphs and forward/backward probes for any nn.Module."""
