"""Examples of serving your own models with ConvScope (see README.md here); a package so that
`examples.resnet18:resnet18` is found from the repository's folder even if another `examples` is installed."""
