"""A read-only web view of the profile's chains, served by ``aiida-multiscale serve`` (Flask, vendored cytoscape)."""
