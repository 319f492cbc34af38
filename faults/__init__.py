"""faults: fault plans, injectors, seeded replay and the hang detector."""
