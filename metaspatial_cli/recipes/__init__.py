"""The recipe runner: YAML spec, steps, execution (see metaspatial_cli/recipe.py)."""
