"""Study steps behind the notebooks (one module per notebook)."""
