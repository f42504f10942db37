"""A Monte Carlo estimate of pi, split into tasks for a Dask cluster."""
