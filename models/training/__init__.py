"""Training the built-in models and building the data subsets: tools of the repository, never imported by
the runtime and not in the wheel (`make data`, `make subsets`, `make train`)."""
