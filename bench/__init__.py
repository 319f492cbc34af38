"""bench: benchmarks that print ratios measured in the same run and save JSON."""
